package suite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
)

// GoodType is the ce_type of the good messages a poison test writes.
const GoodType = "poison.good"

// PoisonWant is what a poison test expects once the messages were written.
type PoisonWant struct {
	// Good maps the payload of each message that must be handled (once) to
	// metadata it must carry, in its text form (nil: no check).
	Good map[string]map[string]string
	// Bad maps a marker in the payload of each message that must be
	// dead-lettered (once) to a text its fault (hexeract_fault_error) must
	// contain.
	Bad map[string]string
	// Check, when set, checks the metadata of each good message handled.
	Check func(payload string, md message.Metadata) error
}

// Poison runs a Hexeract App on pub and sub consuming topic, with the
// default middleware (retries, dead letters to topic + ".dlq"), calls write
// once the App is subscribed (write puts the messages straight on the
// broker with the transport's own client), and checks that every good
// message is handled once, every bad one dead-lettered once with its
// fault, that nothing is redelivered for a while after that (deliveries are
// bounded) and that App.Run neither returned on its own nor outlives its
// cancellation by more than the close timeout. dlqSub consumes the
// dead-letter topic.
func Poison(t *testing.T, pub message.Publisher, sub, dlqSub message.Subscriber, topic string, write func(t *testing.T), want PoisonWant) {
	t.Helper()
	const closeTimeout = 5 * time.Second
	logw := &testWriter{t: t}
	t.Cleanup(logw.stop)
	app, err := hexeract.New(
		hexeract.WithPubSub(pub, sub),
		hexeract.WithLogger(slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))),
		hexeract.WithRouterConfig(message.RouterConfig{CloseTimeout: closeTimeout}),
	)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	handled := map[string]int{}
	seen := map[string]message.Metadata{}
	unexpected := []string{}
	err = app.AddHandler("poison", topic, func(msg *message.Message) error {
		mu.Lock()
		defer mu.Unlock()
		p := string(msg.Payload)
		if _, ok := want.Good[p]; !ok {
			unexpected = append(unexpected, fmt.Sprintf("%q %v", p, msg.Metadata))
			return errors.New("poison test: not a good message")
		}
		handled[p]++
		seen[p] = maps.Clone(msg.Metadata)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- app.Run(ctx) }()
	select {
	case <-app.Running():
	case err := <-runDone:
		t.Fatalf("App.Run returned before running: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the App was not running after 30s")
	}
	dlqCtx, dlqCancel := context.WithCancel(context.Background())
	defer dlqCancel()
	dead, err := dlqSub.Subscribe(dlqCtx, topic+middleware.DefaultDLQSuffix)
	if err != nil {
		t.Fatal(err)
	}
	deadCount := map[string]int{}
	faults := map[string]string{}
	var strays []string
	go func() {
		for msg := range dead {
			mu.Lock()
			found := false
			for marker := range want.Bad {
				if bytes.Contains(msg.Payload, []byte(marker)) {
					deadCount[marker]++
					faults[marker] = msg.Metadata.Get(router.KeyFaultError)
					found = true
					break
				}
			}
			if !found {
				strays = append(strays, fmt.Sprintf("%q %v", msg.Payload, msg.Metadata))
			}
			mu.Unlock()
			msg.Ack()
		}
	}()

	write(t)

	complete := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == len(want.Good) && len(deadCount) == len(want.Bad)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !complete() && time.Now().Before(deadline) {
		select {
		case err := <-runDone:
			t.Fatalf("App.Run returned on its own while messages were flowing: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	// Deliveries are bounded: nothing more comes in the next while.
	select {
	case err := <-runDone:
		t.Fatalf("App.Run returned on its own: %v", err)
	case <-time.After(2 * time.Second):
	}
	mu.Lock()
	for p, md := range want.Good {
		switch n := handled[p]; {
		case n == 0:
			t.Errorf("good message %q never handled", p)
		case n > 1:
			t.Errorf("good message %q handled %d times, want once", p, n)
		}
		if want.Check != nil && handled[p] > 0 {
			if err := want.Check(p, seen[p]); err != nil {
				t.Errorf("good message %q: %v", p, err)
			}
		}
		for k, v := range md {
			if got := seen[p][k]; handled[p] > 0 && got != v {
				t.Errorf("good message %q: metadata %s = %q, want %q", p, k, got, v)
			}
		}
	}
	for marker, fault := range want.Bad {
		switch n := deadCount[marker]; {
		case n == 0:
			t.Errorf("bad message %q never dead-lettered", marker)
		case n > 1:
			t.Errorf("bad message %q dead-lettered %d times, want once", marker, n)
		}
		if f := faults[marker]; deadCount[marker] > 0 && !strings.Contains(f, fault) {
			t.Errorf("bad message %q: fault %q, want it to contain %q", marker, f, fault)
		}
	}
	for _, u := range unexpected {
		t.Errorf("handler got a message it should not: %s", u)
	}
	for _, s := range strays {
		t.Errorf("unexpected dead letter: %s", s)
	}
	mu.Unlock()

	start := time.Now()
	cancel()
	select {
	case err := <-runDone:
		if err != nil {
			t.Errorf("App.Run after cancellation: %v", err)
		}
		if d := time.Since(start); d > closeTimeout+2*time.Second {
			t.Errorf("App.Run returned %s after cancellation, want within the close timeout %s", d, closeTimeout)
		}
	case <-time.After(closeTimeout + 10*time.Second):
		t.Errorf("App.Run did not return within %s of cancellation", closeTimeout+10*time.Second)
	}
	_ = app.Close()
}

// testWriter writes log lines to the test log until the test ends.
type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}
