package reqreply_test

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters/gochannel"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/reqreply"
)

func TestTracingOneTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	ps := gochannel.New(gochannel.Config{Buffer: 16}, nil)
	t.Cleanup(func() { _ = ps.Close() })
	newApp := func() *hexeract.App {
		conn := newConnection(ps)
		app, err := hexeract.New(hexeract.WithPubSub(conn, conn), hexeract.WithLogger(quietLogger()),
			hexeract.WithDefaultMiddleware(func(c *middleware.DefaultConfig) { c.Tracing.TracerProvider = tp }))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = app.Close() })
		return app
	}
	responder, caller := newApp(), newApp()
	var handlerSpan trace.SpanContext
	err := reqreply.Handle(responder, func(ctx context.Context, q Double) (Doubled, error) {
		handlerSpan = trace.SpanContextFromContext(ctx)
		return Doubled{N: q.N, Result: 2 * q.N}, nil
	}, reqreply.HandlerTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	testenv.StartApp(t, responder)
	if _, err := reqreply.NewClient(caller, reqreply.TracerProvider(tp)); err != nil {
		t.Fatal(err)
	}

	ctx, root := tp.Tracer("test").Start(context.Background(), "checkout")
	if _, err := reqreply.Request[Double, Doubled](ctx, caller, Double{N: 2}, reqreply.Timeout(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	root.End()
	traceID := root.SpanContext().TraceID()
	if handlerSpan.TraceID() != traceID {
		t.Fatalf("handler ran in trace %s, want the caller's %s", handlerSpan.TraceID(), traceID)
	}

	// Wait for the reply's producer span to end (it ends after Publish returns).
	var spans []sdktrace.ReadOnlySpan
	eventually(t, "spans ended", 5*time.Second, func() bool {
		spans = rec.Ended()
		names := map[string]bool{}
		for _, s := range spans {
			names[s.Name()] = true
		}
		return names["math.double request"] && names["math.double handle"] && names["send "+mustClient(t, caller).ReplyTopic()]
	})
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		if s.SpanContext().TraceID() != traceID {
			t.Errorf("span %q is in trace %s, want %s", s.Name(), s.SpanContext().TraceID(), traceID)
		}
		byID[s.SpanContext().SpanID()] = s
	}
	find := func(name string) sdktrace.ReadOnlySpan {
		for _, s := range spans {
			if s.Name() == name {
				return s
			}
		}
		t.Fatalf("no span %q", name)
		return nil
	}
	request, handle := find("math.double request"), find("math.double handle")
	if request.SpanKind() != trace.SpanKindClient || handle.SpanKind() != trace.SpanKindServer {
		t.Errorf("kinds: request %v, handle %v", request.SpanKind(), handle.SpanKind())
	}
	// The handle span descends from the request span.
	found := false
	for p := handle.Parent(); p.IsValid(); {
		if p.SpanID() == request.SpanContext().SpanID() {
			found = true
			break
		}
		parent, ok := byID[p.SpanID()]
		if !ok {
			break
		}
		p = parent.Parent()
	}
	if !found {
		t.Errorf("the handle span does not descend from the request span")
	}
	if request.Parent().SpanID() != root.SpanContext().SpanID() {
		t.Errorf("the request span is not a child of the caller's span")
	}
}

func mustClient(t *testing.T, app *hexeract.App) *reqreply.Client {
	t.Helper()
	c, err := reqreply.ClientFor(app)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
