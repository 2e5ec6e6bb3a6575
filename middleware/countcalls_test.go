package middleware_test

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	wmmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hexeract/hexeract/middleware"
)

// With Watermill's own Retry between DeadLetter and CountCalls, the dead
// letter counts the handler calls made and the times of the first and the
// last failed call, with and without ResetContextOnRetry.
func TestCountCallsWithWatermillRetry(t *testing.T) {
	for _, reset := range []bool{false, true} {
		t.Run(map[bool]string{false: "keep-context", true: "reset-context"}[reset], func(t *testing.T) {
			ps := newPubSub(t)
			topic := topicName("orders")
			dlq := subscribe(t, ps, topic+".dlq")
			dead := must(middleware.DeadLetter(ps, middleware.DeadLetterOptions{}))
			wmRetry := wmmiddleware.Retry{MaxRetries: 2, InitialInterval: 20 * time.Millisecond, ResetContextOnRetry: reset}
			var mu sync.Mutex
			var calls []time.Time
			runRouter(t, ps, topic, func(*message.Message) error {
				mu.Lock()
				calls = append(calls, time.Now())
				mu.Unlock()
				return errors.New("fails")
			}, dead, wmRetry.Middleware, middleware.CountCalls)
			publish(t, ps, topic, message.NewMessage("m", []byte("x")))
			dl := recv(t, dlq)
			f, _ := middleware.FaultOf(dl.Metadata)
			mu.Lock()
			defer mu.Unlock()
			if len(calls) != 3 || f.Attempts != 3 {
				t.Fatalf("handler calls = %d, dead letter attempts = %d; want 3 and 3", len(calls), f.Attempts)
			}
			if !f.FirstFailure.Before(f.LastFailure) {
				t.Errorf("first failure %v not before last failure %v", f.FirstFailure, f.LastFailure)
			}
			if d := f.FirstFailure.Sub(calls[0]); d < 0 || d > 15*time.Millisecond {
				t.Errorf("first failure %v is not the first call's failure (%v)", f.FirstFailure, calls[0])
			}
			if f.LastFailure.Before(calls[2]) {
				t.Errorf("last failure %v is before the last call %v", f.LastFailure, calls[2])
			}
		})
	}
}

// Hexeract's Retry around Watermill's: every handler call is counted.
func TestCountCallsNestedRetries(t *testing.T) {
	ps := newPubSub(t)
	topic := topicName("orders")
	dlq := subscribe(t, ps, topic+".dlq")
	dead := must(middleware.DeadLetter(ps, middleware.DeadLetterOptions{}))
	retry := must(middleware.Retry(middleware.RetryPolicy{MaxAttempts: 2, InitialInterval: 5 * time.Millisecond}))
	wmRetry := wmmiddleware.Retry{MaxRetries: 2, InitialInterval: 5 * time.Millisecond}
	runRouter(t, ps, topic, func(*message.Message) error { return errors.New("fails") },
		dead, retry, wmRetry.Middleware, middleware.CountCalls)
	publish(t, ps, topic, message.NewMessage("m", []byte("x")))
	f, _ := middleware.FaultOf(recv(t, dlq).Metadata)
	if f.Attempts != 6 {
		t.Fatalf("dead letter attempts = %d, want 6 (2 Hexeract attempts of 3 Watermill calls)", f.Attempts)
	}
}

// A handler that panics under Watermill's Retry and Recoverer, with
// CountCalls innermost and Tracing on a recording provider outside: the
// message is dead-lettered once with the panic as its fault, and the
// consumer span records it (the tracing middleware used to dereference a
// nil error here, so the router recovered the panic and redelivered the
// message for ever).
func TestCountCallsHandlerPanicIsDeadLetteredOnce(t *testing.T) {
	ps := newPubSub(t)
	topic := topicName("orders")
	dlq := subscribe(t, ps, topic+".dlq")
	rec := tracetest.NewSpanRecorder()
	tracing := middleware.Tracing(middleware.TracingOptions{TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))})
	dead := must(middleware.DeadLetter(ps, middleware.DeadLetterOptions{}))
	wmRetry := wmmiddleware.Retry{MaxRetries: 2, InitialInterval: 5 * time.Millisecond}
	var calls atomic.Int32
	runRouter(t, ps, topic, func(*message.Message) error {
		calls.Add(1)
		panic("unlucky")
	}, tracing, dead, wmRetry.Middleware, wmmiddleware.Recoverer, middleware.CountCalls)
	publish(t, ps, topic, message.NewMessage("m", []byte("x")))
	f, _ := middleware.FaultOf(recv(t, dlq).Metadata)
	if f.Attempts != 3 || !strings.Contains(f.Error, "unlucky") {
		t.Fatalf("dead letter: %d attempts, error %q; want 3 and the panic", f.Attempts, f.Error)
	}
	select {
	case m := <-dlq:
		t.Fatalf("a second dead letter %s: the message was redelivered", m.UUID)
	case <-time.After(300 * time.Millisecond):
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("handler called %d times, want 3", n)
	}
	var spans int
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindConsumer {
			spans++
			if s.Status().Code != codes.Error || !strings.Contains(s.Status().Description, "unlucky") {
				t.Errorf("consumer span status %v %q; want the panic as an error", s.Status().Code, s.Status().Description)
			}
		}
	}
	if spans != 1 {
		t.Fatalf("%d consumer spans, want 1", spans)
	}
}
