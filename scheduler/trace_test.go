package scheduler_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hexeract/hexeract/adapters/gochannel"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/scheduler"
)

// TestScheduledMessagesKeepTheTrace: a message scheduled with After from a
// span, and a message redelivered by Redelivery after its handler failed,
// each get a "create" span that is a child of the step that scheduled them
// (the caller's span, the failed delivery's consumer span), and their
// consumers continue that trace.
func TestScheduledMessagesKeepTheTrace(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tracing := middleware.TracingOptions{TracerProvider: tp}
	pool := testenv.Postgres(t)
	bus := gochannel.New(gochannel.Config{Buffer: 16}, watermill.NopLogger{})
	t.Cleanup(func() { _ = bus.Close() })
	s := newScheduler(t, pool, scheduler.PublisherSink(middleware.TracingPublisher(bus, tracing)), "",
		scheduler.WithTracerProvider(tp), scheduler.WithPollInterval(50*time.Millisecond))
	run(t, s)

	redelivery, err := s.Redelivery(scheduler.RedeliveryConfig{Delays: []time.Duration{50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	r.AddMiddleware(middleware.Tracing(tracing), redelivery)
	var calls atomic.Int32
	done := make(chan struct{})
	topic := reminder{}.MessageType()
	r.AddConsumerHandler("reminders", topic, bus, func(msg *message.Message) error {
		if calls.Add(1) == 1 {
			return errors.New("not yet")
		}
		close(done)
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); _ = r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-stopped })
	<-r.Running()

	sctx, root := tp.Tracer("test").Start(context.Background(), "remind me")
	if _, err := s.ScheduleWith(sctx, scheduler.Exec(s), time.Now().Add(10*time.Millisecond), reminder{N: 1}); err != nil {
		t.Fatal(err)
	}
	root.End()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the redelivered reminder was not handled")
	}
	var spans []sdktrace.ReadOnlySpan
	deadline := time.Now().Add(5 * time.Second)
	for {
		spans = rec.Ended()
		processes := 0
		for _, sp := range spans {
			if sp.Name() == "process "+topic {
				processes++
			}
		}
		if processes == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	var creates, processes []sdktrace.ReadOnlySpan
	for _, sp := range spans {
		if sp.SpanContext().TraceID() != root.SpanContext().TraceID() {
			t.Errorf("span %q is in trace %s, not the caller's %s", sp.Name(), sp.SpanContext().TraceID(), root.SpanContext().TraceID())
		}
		switch sp.Name() {
		case "create " + topic:
			creates = append(creates, sp)
		case "process " + topic:
			processes = append(processes, sp)
		}
	}
	if len(creates) != 2 || len(processes) != 2 {
		t.Fatalf("%d create and %d process spans, want 2 and 2", len(creates), len(processes))
	}
	// Ended in order: the first create (After) before the first process
	// (which fails and schedules the second create).
	first, failed := creates[0], processes[0]
	if first.StartTime().After(creates[1].StartTime()) {
		first, creates[1] = creates[1], first
	}
	if failed.StartTime().After(processes[1].StartTime()) {
		failed, processes[1] = processes[1], failed
	}
	if first.Parent().SpanID() != root.SpanContext().SpanID() || first.SpanKind() != trace.SpanKindProducer {
		t.Errorf("the create span of After is not a producer child of the caller's span")
	}
	if creates[1].Parent().SpanID() != failed.SpanContext().SpanID() {
		t.Errorf("the redelivery's create span is not a child of the failed delivery's consumer span")
	}
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, sp := range spans {
		byID[sp.SpanContext().SpanID()] = sp
	}
	descends := func(s, anc sdktrace.ReadOnlySpan) bool {
		for p := byID[s.Parent().SpanID()]; p != nil; p = byID[p.Parent().SpanID()] {
			if p.SpanContext().SpanID() == anc.SpanContext().SpanID() {
				return true
			}
		}
		return false
	}
	if !descends(failed, first) || !descends(processes[1], creates[1]) {
		t.Errorf("the consumers do not continue the scheduled messages' traces")
	}
}
