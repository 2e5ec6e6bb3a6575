package suite

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Flow is the outcome of [RestartWhileFlowing].
type Flow struct {
	Accepted      int           // messages whose Publish returned nil
	Received      int           // distinct messages the subscriber got
	Duplicates    int           // deliveries beyond the first of a message
	PublishErrors int           // failed Publish calls (retried)
	AfterRestart  int           // messages accepted after the broker was back
	Outage        time.Duration // time restart took
}

// RestartWhileFlowing publishes messages on topic, one at a time and
// retrying each until the transport accepts it, while a subscriber consumes
// and acks them. After a tenth of total is accepted it calls restart, which
// takes the broker down and up again; publishing goes on until at least
// total messages, a tenth of them after the restart, were accepted. It then waits (up to timeout) until
// every accepted message was received and fails the test if any accepted
// message is missing or a message that was never published shows up.
func RestartWhileFlowing(t *testing.T, pub message.Publisher, sub message.Subscriber, topic string, total int, timeout time.Duration, restart func() error) Flow {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	msgs, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	var mu sync.Mutex
	received := map[string]int{}
	attempted := map[string]bool{}
	accepted := map[string]bool{}
	go func() {
		for m := range msgs {
			mu.Lock()
			received[m.UUID]++
			mu.Unlock()
			m.Ack()
		}
	}()

	var flow Flow
	var acceptedN, errorsN, afterRestart int
	restartDone := make(chan struct{})
	published := make(chan error, 1)
	go func() {
		// Publish at least total messages, and keep publishing until a tenth
		// of total was accepted after the restart, so messages flow through
		// the whole outage and after it.
		for i := 0; ; i++ {
			mu.Lock()
			enough := i >= total && afterRestart >= total/10
			mu.Unlock()
			if enough {
				break
			}
			id := fmt.Sprintf("msg-%06d", i)
			mu.Lock()
			attempted[id] = true
			mu.Unlock()
			for {
				if ctx.Err() != nil {
					published <- fmt.Errorf("timed out publishing message %d", i)
					return
				}
				err := pub.Publish(topic, message.NewMessage(id, []byte(`{"n":`+fmt.Sprint(i)+`}`)))
				if err == nil {
					break
				}
				mu.Lock()
				errorsN++
				mu.Unlock()
				time.Sleep(50 * time.Millisecond)
			}
			mu.Lock()
			accepted[id] = true
			acceptedN++
			select {
			case <-restartDone:
				afterRestart++
			default:
			}
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
		published <- nil
	}()

	// Restart once a tenth of the messages is accepted, while the publisher
	// keeps publishing (and retrying through the outage).
	for {
		mu.Lock()
		n := acceptedN
		mu.Unlock()
		if n >= total/10 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("timed out before the restart: %d accepted", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	if err := restart(); err != nil {
		t.Fatalf("restarting the broker: %v", err)
	}
	flow.Outage = time.Since(start)
	close(restartDone)
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	flow.Accepted, flow.PublishErrors, flow.AfterRestart = acceptedN, errorsN, afterRestart
	mu.Unlock()

	for {
		mu.Lock()
		missing := 0
		for id := range accepted {
			if received[id] == 0 {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%d of %d accepted messages never arrived after the broker restart", missing, len(accepted))
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for id, n := range received {
		if !attempted[id] {
			t.Errorf("phantom message %s received", id)
		}
		flow.Duplicates += n - 1
	}
	flow.Received = len(received)
	return flow
}
