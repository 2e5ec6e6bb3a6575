package middleware_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/middleware"
)

// When the dead letter cannot be published, the message is nacked only
// after a wait that doubles with each consecutive failure (up to the cap)
// and starts again after a dead letter succeeded: a broken dead-letter
// topic does not become an immediate redelivery loop.
func TestDeadLetterFailureBacksOff(t *testing.T) {
	ps := newPubSub(t)
	topic := topicName("orders")
	dlq := subscribe(t, ps, topic+".dlq")
	// Fails the first 4 dead letters, then the 5th after one succeeded.
	flaky := &flakyPublisher{Publisher: ps, suffix: ".dlq", fails: 4}
	const delay, maxDelay = 40 * time.Millisecond, 320 * time.Millisecond
	dead := must(middleware.DeadLetter(flaky, middleware.DeadLetterOptions{FailureDelay: delay, MaxFailureDelay: maxDelay}))
	var mu sync.Mutex
	calls := map[string][]time.Time{}
	runRouter(t, ps, topic, func(msg *message.Message) error {
		mu.Lock()
		calls[msg.UUID] = append(calls[msg.UUID], time.Now())
		mu.Unlock()
		return errors.New("always fails")
	}, dead)

	publish(t, ps, topic, message.NewMessage("first", []byte("x")))
	if got := recv(t, dlq); got.UUID != "first" {
		t.Fatalf("dead letter %s, want first", got.UUID)
	}
	mu.Lock()
	first := calls["first"]
	mu.Unlock()
	if len(first) != 5 {
		t.Fatalf("first was handled %d times, want 5 (4 failed dead letters, then one that succeeded)", len(first))
	}
	for i, want := range []time.Duration{delay, 2 * delay, 4 * delay, 8 * delay} {
		if gap := first[i+1].Sub(first[i]); gap < want {
			t.Errorf("redelivery %d came %v after the failed dead letter, want at least %v", i+1, gap, want)
		}
	}

	// After a dead letter succeeded the wait starts again at FailureDelay.
	flaky.mu.Lock()
	flaky.fails++
	flaky.mu.Unlock()
	publish(t, ps, topic, message.NewMessage("second", []byte("x")))
	if got := recv(t, dlq); got.UUID != "second" {
		t.Fatalf("dead letter %s, want second", got.UUID)
	}
	mu.Lock()
	second := calls["second"]
	mu.Unlock()
	if len(second) != 2 {
		t.Fatalf("second was handled %d times, want 2", len(second))
	}
	if gap := second[1].Sub(second[0]); gap < delay || gap >= 8*delay {
		t.Errorf("wait after the first failure following a success = %v, want FailureDelay (%v) again", gap, delay)
	}
}

// A negative FailureDelay nacks at once, as before.
func TestDeadLetterFailureDelayNegative(t *testing.T) {
	ps := newPubSub(t)
	topic := topicName("orders")
	dlq := subscribe(t, ps, topic+".dlq")
	flaky := &flakyPublisher{Publisher: ps, suffix: ".dlq", fails: 3}
	dead := must(middleware.DeadLetter(flaky, middleware.DeadLetterOptions{FailureDelay: -1}))
	start := time.Now()
	runRouter(t, ps, topic, func(*message.Message) error { return errors.New("fails") }, dead)
	publish(t, ps, topic, message.NewMessage("m", []byte("x")))
	recv(t, dlq)
	if el := time.Since(start); el > 900*time.Millisecond {
		t.Errorf("dead letter after %v with FailureDelay < 0, want no wait", el)
	}
}

// A dead-letter topic that cannot be initialized backs off the same way.
func TestDeadLetterInitFailureBacksOff(t *testing.T) {
	ps := newPubSub(t)
	topic := topicName("orders")
	dlq := subscribe(t, ps, topic+".dlq")
	var mu sync.Mutex
	initCalls := 0
	const delay = 40 * time.Millisecond
	dead := must(middleware.DeadLetter(ps, middleware.DeadLetterOptions{
		FailureDelay: delay,
		Initialize: func(string) error {
			mu.Lock()
			defer mu.Unlock()
			initCalls++
			if initCalls <= 6 { // fails on the first three messages' two tries each
				return errors.New("stream cannot be created")
			}
			return nil
		},
	}))
	var calls []time.Time
	runRouter(t, ps, topic, func(*message.Message) error {
		mu.Lock()
		calls = append(calls, time.Now())
		mu.Unlock()
		return errors.New("fails")
	}, dead)
	publish(t, ps, topic, message.NewMessage("m", []byte("x")))
	recv(t, dlq)
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 4 {
		t.Fatalf("handled %d times, want 4 (3 with a failing initialization, then dead-lettered)", len(calls))
	}
	for i, want := range []time.Duration{delay, 2 * delay, 4 * delay} {
		if gap := calls[i+1].Sub(calls[i]); gap < want {
			t.Errorf("redelivery %d came %v after the failed initialization, want at least %v", i+1, gap, want)
		}
	}
}
