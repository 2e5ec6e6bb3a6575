package middleware_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	wmmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/hexeract/hexeract/middleware"
)

// TestTracingContinuesThroughRawHandlerOutput: on a plain Watermill router
// with Watermill's Recoverer and Retry, a raw handler that returns a new
// message (message.NewMessage, nothing copied) has it published by the
// router; the message continues the consumer's trace, whether the router's
// publisher is a TracingPublisher (its send span is a child of the
// consumer span) or a plain one (the traceparent metadata is the consumer
// span's). The next consumer's span is in the same trace.
func TestTracingContinuesThroughRawHandlerOutput(t *testing.T) {
	for _, decorate := range []bool{true, false} {
		name := "plain-publisher"
		if decorate {
			name = "tracing-publisher"
		}
		t.Run(name, func(t *testing.T) {
			tel := newTelemetry()
			opts := middleware.TracingOptions{TracerProvider: tel.tp}
			ps := newPubSub(t)
			var routerPub message.Publisher = ps
			if decorate {
				routerPub = middleware.TracingPublisher(ps, opts)
			}
			in, out := topicName("raw.in"), topicName("raw.out")
			r, err := message.NewRouter(message.RouterConfig{CloseTimeout: 5 * time.Second}, watermill.NopLogger{})
			if err != nil {
				t.Fatal(err)
			}
			r.AddMiddleware(wmmiddleware.Recoverer, middleware.Tracing(opts),
				wmmiddleware.Retry{MaxRetries: 1, InitialInterval: time.Millisecond, Logger: watermill.NopLogger{}}.Middleware)
			r.AddHandler("forward", in, ps, out, routerPub, func(msg *message.Message) ([]*message.Message, error) {
				return []*message.Message{message.NewMessage(watermill.NewUUID(), []byte("next"))}, nil
			})
			got := make(chan struct{}, 1)
			r.AddConsumerHandler("last", out, ps, func(msg *message.Message) error {
				got <- struct{}{}
				return nil
			})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); _ = r.Run(ctx) }()
			defer func() { cancel(); <-done }()
			<-r.Running()

			pctx, root := tel.tp.Tracer("test").Start(context.Background(), "edge")
			first := message.NewMessage(watermill.NewUUID(), []byte("first"))
			first.SetContext(pctx)
			if err := middleware.TracingPublisher(ps, opts).Publish(in, first); err != nil {
				t.Fatal(err)
			}
			root.End()
			select {
			case <-got:
			case <-time.After(5 * time.Second):
				t.Fatal("the returned message was not consumed")
			}
			spans := waitSpans(t, tel.spans, spanCount(decorate))
			byName := map[string]sdktrace.ReadOnlySpan{}
			for _, s := range spans {
				byName[s.Name()] = s
			}
			firstProcess, lastProcess := byName["process "+in], byName["process "+out]
			if firstProcess == nil || lastProcess == nil {
				t.Fatalf("spans %v", spanNames(spans))
			}
			want := root.SpanContext().TraceID()
			for _, s := range spans {
				if s.SpanContext().TraceID() != want {
					t.Errorf("span %q is in trace %s, want the edge's trace %s", s.Name(), s.SpanContext().TraceID(), want)
				}
			}
			if !hasAncestor(spans, lastProcess, firstProcess.SpanContext()) {
				t.Errorf("the consumer of the returned message (parent %s) does not descend from the raw handler's consumer span %s",
					lastProcess.Parent().SpanID(), firstProcess.SpanContext().SpanID())
			}
			if decorate {
				send := byName["send "+out]
				if send == nil || send.Parent().SpanID() != firstProcess.SpanContext().SpanID() {
					t.Errorf("the send span of the returned message is not a child of the consumer span: %v", send)
				}
			}
		})
	}
}

func spanCount(decorate bool) int {
	if decorate {
		return 5 // edge, send in, process in, send out, process out
	}
	return 4
}

// hasAncestor reports whether anc is s or one of its ancestors among spans.
func hasAncestor(spans []sdktrace.ReadOnlySpan, s sdktrace.ReadOnlySpan, anc trace.SpanContext) bool {
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, x := range spans {
		byID[x.SpanContext().SpanID()] = x
	}
	for s != nil {
		if s.SpanContext().SpanID() == anc.SpanID() {
			return true
		}
		s = byID[s.Parent().SpanID()]
	}
	return false
}

// TestTracingReturnedMessagesKeepTheirOwnContext: a returned message that
// copied the incoming metadata (and so its traceparent) continues the
// consumer span; one that carries another span context of its own, in its
// metadata or its context, keeps it.
func TestTracingReturnedMessagesKeepTheirOwnContext(t *testing.T) {
	tel := newTelemetry()
	opts := middleware.TracingOptions{TracerProvider: tel.tp}
	tracer := tel.tp.Tracer("test")
	pctx, producer := tracer.Start(context.Background(), "producer")
	producer.End()
	in := message.NewMessage("in-1", nil)
	if err := middleware.TracingPublisher(nopPublisher{}, opts).Publish("t", withContext(in, pctx)); err != nil {
		t.Fatal(err)
	}

	octx, other := tracer.Start(context.Background(), "other")
	other.End()
	own := message.NewMessage("own-md", nil)
	if err := middleware.TracingPublisher(nopPublisher{}, opts).Publish("t", withContext(own, octx)); err != nil {
		t.Fatal(err)
	}
	ownTP := own.Metadata.Get("traceparent")
	own.SetContext(context.Background())
	ownCtx := withContext(message.NewMessage("own-ctx", nil), octx)

	var consumer trace.SpanContext
	var copied *message.Message
	h := middleware.Tracing(opts)(func(msg *message.Message) ([]*message.Message, error) {
		consumer = trace.SpanContextFromContext(msg.Context())
		copied = msg.Copy()
		return []*message.Message{copied, own, ownCtx}, nil
	})
	if _, err := h(in); err != nil {
		t.Fatal(err)
	}
	if sc := trace.SpanContextFromContext(copied.Context()); sc.SpanID() != consumer.SpanID() {
		t.Errorf("the copy of the incoming message has context span %s, want the consumer span %s", sc.SpanID(), consumer.SpanID())
	}
	if tp := copied.Metadata.Get("traceparent"); tp == in.Metadata.Get("traceparent") || !strings.Contains(tp, consumer.SpanID().String()) {
		t.Errorf("the copy's traceparent %s is not the consumer span %s", tp, consumer.SpanID())
	}
	if got := own.Metadata.Get("traceparent"); got != ownTP {
		t.Errorf("a message's own traceparent was replaced: %s, want %s", got, ownTP)
	}
	if sc := trace.SpanContextFromContext(ownCtx.Context()); sc.SpanID() != other.SpanContext().SpanID() {
		t.Errorf("a message's own context span was replaced")
	}
}

type nopPublisher struct{}

func (nopPublisher) Publish(string, ...*message.Message) error { return nil }
func (nopPublisher) Close() error                              { return nil }

func withContext(m *message.Message, ctx context.Context) *message.Message {
	m.SetContext(ctx)
	return m
}
