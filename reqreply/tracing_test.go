package reqreply_test

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hexeract/hexeract"
	adamqp "github.com/hexeract/hexeract/adapters/amqp"
	"github.com/hexeract/hexeract/adapters/gochannel"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/reqreply"
	"github.com/hexeract/hexeract/reqreply/replyamqp"
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
	checkOneTrace(t, tp, rec, newApp(), newApp(), nil, nil)
}

// TestTracingOneTraceRabbitMQ: requests on adapters/amqp, replies through
// replyamqp's publisher (not the App's): the reply still gets its producer
// span, a descendant of the handle span, in the caller's trace.
func TestTracingOneTraceRabbitMQ(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	url := testenv.AMQPURL(t)
	sfx := testenv.Suffix()
	topics := hexeract.WithTopicFunc(func(name string) string { return name + "_" + sfx })
	cfg := adamqp.Config{URL: url, Group: "responders"}
	t.Cleanup(func() { deleteAMQP(t, url, sfx, cfg.Group) })
	tracing := hexeract.WithDefaultMiddleware(func(c *middleware.DefaultConfig) { c.Tracing.TracerProvider = tp })

	pub, sub, err := adamqp.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	replyPub, err := replyamqp.NewReplyPublisher(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	callerPub, _, err := adamqp.New(adamqp.Config{URL: url, Group: "callers"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	replies, err := replyamqp.NewReplySubscriber(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeLater(t, sub, pub, replyPub, replies, callerPub)
	responder := newTestApp(t, hexeract.WithPubSub(pub, sub), topics, tracing)
	caller := newTestApp(t, hexeract.WithPublisher(callerPub), topics, tracing)
	checkOneTrace(t, tp, rec, responder, caller,
		[]reqreply.HandlerOption{reqreply.WithReplyPublisher(replyPub)}, []reqreply.ClientOption{reqreply.WithReplySubscriber(replies)})
}

// checkOneTrace sends one request from caller to responder under a root
// span and checks that every span is in the root's trace: the request
// span, the handle span (a descendant of the request span) and the reply's
// producer span (a descendant of the handle span).
func checkOneTrace(t *testing.T, tp *sdktrace.TracerProvider, rec *tracetest.SpanRecorder, responder, caller *hexeract.App,
	hopts []reqreply.HandlerOption, copts []reqreply.ClientOption) {
	t.Helper()
	var handlerSpan trace.SpanContext
	err := reqreply.Handle(responder, func(ctx context.Context, q Double) (Doubled, error) {
		handlerSpan = trace.SpanContextFromContext(ctx)
		return Doubled{N: q.N, Result: 2 * q.N}, nil
	}, append([]reqreply.HandlerOption{reqreply.WithHandlerTracerProvider(tp)}, hopts...)...)
	if err != nil {
		t.Fatal(err)
	}
	testenv.StartApp(t, responder)
	if _, err := reqreply.NewClient(caller, append([]reqreply.ClientOption{reqreply.WithTracerProvider(tp)}, copts...)...); err != nil {
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
	send := find("send " + mustClient(t, caller).ReplyTopic())
	if send.SpanKind() != trace.SpanKindProducer || !descends(byID, send, handle.SpanContext().SpanID()) {
		t.Errorf("the reply's send span (kind %v) does not descend from the handle span", send.SpanKind())
	}
}

// descends reports whether s has the span id anc among its ancestors.
func descends(byID map[trace.SpanID]sdktrace.ReadOnlySpan, s sdktrace.ReadOnlySpan, anc trace.SpanID) bool {
	for p := s.Parent(); p.IsValid(); {
		if p.SpanID() == anc {
			return true
		}
		parent, ok := byID[p.SpanID()]
		if !ok {
			return false
		}
		p = parent.Parent()
	}
	return false
}

func mustClient(t *testing.T, app *hexeract.App) *reqreply.Client {
	t.Helper()
	c, err := reqreply.ClientFor(app)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
