package msgtrace_test

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hexeract/hexeract/internal/msgtrace"
)

func TestParents(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tracer := tp.Tracer("test")
	callerCtx, caller := tracer.Start(context.Background(), "caller")
	msgCtx, inMsg := tracer.Start(context.Background(), "message")
	mdCtx, inMD := tracer.Start(context.Background(), "metadata")

	withMD := message.NewMessage("a", nil)
	msgtrace.Inject(mdCtx, withMD, msgtrace.TraceContext)
	withCtx := message.NewMessage("b", nil)
	withCtx.SetContext(msgCtx)
	bare := message.NewMessage("c", nil)

	spanOf := func(ctx context.Context) trace.SpanID { return trace.SpanContextFromContext(ctx).SpanID() }
	for _, c := range []struct {
		name string
		got  context.Context
		want trace.SpanID
	}{
		{"MessageParent prefers the message's context", msgtrace.MessageParent(callerCtx, withCtx), inMsg.SpanContext().SpanID()},
		{"MessageParent then its metadata", msgtrace.MessageParent(callerCtx, withMD), inMD.SpanContext().SpanID()},
		{"MessageParent then ctx", msgtrace.MessageParent(callerCtx, bare), caller.SpanContext().SpanID()},
		{"CallerParent prefers ctx", msgtrace.CallerParent(callerCtx, withMD), caller.SpanContext().SpanID()},
		{"CallerParent without a caller span: the message's", msgtrace.CallerParent(context.Background(), withMD), inMD.SpanContext().SpanID()},
	} {
		if spanOf(c.got) != c.want {
			t.Errorf("%s: span %s, want %s", c.name, spanOf(c.got), c.want)
		}
	}

	// Create: a producer child of the parent whose context the message carries.
	m := message.NewMessage("d", nil)
	span := msgtrace.NewCreator(tracer, "").Create(callerCtx, "orders", m)
	span.End()
	got := trace.SpanContextFromContext(msgtrace.Extract(context.Background(), m.Metadata, msgtrace.TraceContext))
	if got.SpanID() != span.SpanContext().SpanID() {
		t.Errorf("the message carries %s, want the create span %s", got.SpanID(), span.SpanContext().SpanID())
	}
	ended := rec.Ended()
	if s := ended[len(ended)-1]; s.Name() != "create orders" || s.SpanKind() != trace.SpanKindProducer || s.Parent().SpanID() != caller.SpanContext().SpanID() {
		t.Errorf("create span %q kind %v parent %s", s.Name(), s.SpanKind(), s.Parent().SpanID())
	}

	// Detach keeps the span context and drops cancellation.
	cctx, cancel := context.WithCancel(callerCtx)
	cancel()
	if d := msgtrace.Detach(cctx); d.Err() != nil || spanOf(d) != caller.SpanContext().SpanID() {
		t.Errorf("Detach: err %v span %s", d.Err(), spanOf(d))
	}
}
