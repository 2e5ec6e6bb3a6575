package middleware

import (
	"context"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/hexeract/hexeract/internal/msgtrace"
	"github.com/hexeract/hexeract/router"
)

// ScopeName is the OpenTelemetry instrumentation scope of Hexeract's tracer
// and meter.
const ScopeName = "github.com/hexeract/hexeract/middleware"

// DefaultSystem is the messaging.system attribute value used when none is
// configured. Set the transport's well-known value (for example "rabbitmq",
// "kafka", "nats") in the options when you know it.
const DefaultSystem = "hexeract"

// Attribute keys Hexeract adds beside the messaging semantic conventions.
const (
	AttrHandler         = attribute.Key("hexeract.handler.name")
	AttrDeadLetterTopic = attribute.Key("hexeract.dead_letter.topic")
	AttrAttempts        = attribute.Key("hexeract.attempts")
)

// TracingOptions configure [Tracing] and [TracingPublisher]. The zero value
// uses the global tracer provider and W3C trace context.
type TracingOptions struct {
	// TracerProvider creates the tracer; nil means otel.GetTracerProvider()
	// (which follows a provider installed later with otel.SetTracerProvider).
	TracerProvider trace.TracerProvider
	// Propagator writes and reads the span context in message metadata; nil
	// means W3C Trace Context (traceparent, tracestate), whatever the global
	// propagator is.
	Propagator propagation.TextMapPropagator
	// System is the messaging.system attribute; "" means DefaultSystem.
	System string
}

func (o TracingOptions) tracer() trace.Tracer {
	tp := o.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(ScopeName)
}

func (o TracingOptions) propagator() propagation.TextMapPropagator {
	if o.Propagator == nil {
		return propagation.TraceContext{}
	}
	return o.Propagator
}

func (o TracingOptions) system() string {
	if o.System == "" {
		return DefaultSystem
	}
	return o.System
}

// handlerInfo is what a middleware computes once per handler: Watermill
// builds each middleware once per handler, and a handler consumes one topic.
type handlerInfo struct {
	handler, topic string
	spanName       string
	spanOpts       []trace.SpanStartOption
}

// Tracing returns middleware that starts a consumer span for each message,
// as a child of the producer's span found in the message metadata
// (traceparent/tracestate, written by [TracingPublisher]). The span is named
// "process <topic>", has kind Consumer and the messaging semantic-convention
// attributes messaging.system, messaging.destination.name,
// messaging.operation.type and .name ("process"), messaging.message.id and
// messaging.message.conversation_id (the correlation id). A failure, including
// one that was dead-lettered, is recorded on the span with status Error.
//
// The handler's context carries the span, so messages the handler publishes
// through a [TracingPublisher] continue the trace. So do the messages a raw
// Watermill handler returns for the router to publish: each one that
// carries no span of its own (in its context or its metadata; metadata
// copied from the incoming message does not count) gets the consumer span
// as its context and in its traceparent/tracestate metadata, so the
// router's publisher, a [TracingPublisher] or a plain one, continues the
// trace.
func Tracing(opts TracingOptions) message.HandlerMiddleware {
	tracer := opts.tracer()
	prop := opts.propagator()
	fields := prop.Fields()
	system := opts.system()
	return func(h message.HandlerFunc) message.HandlerFunc {
		var info atomic.Pointer[handlerInfo]
		return func(msg *message.Message) ([]*message.Message, error) {
			d := deliveryOf(msg)
			ctx := msg.Context()
			hi := info.Load()
			if hi == nil {
				hi = newHandlerInfo(ctx, system)
				info.Store(hi)
			}
			if msgtrace.HasAny(msg.Metadata, fields) {
				ctx = prop.Extract(ctx, propagation.MapCarrier(msg.Metadata))
			}
			ctx, span := tracer.Start(ctx, hi.spanName, hi.spanOpts...)
			defer span.End()
			recording := span.IsRecording()
			if recording {
				msgtrace.SetMessageAttributes(span, msg)
			}
			parentTP := msg.Metadata.Get(router.KeyTraceParent)
			msg.SetContext(ctx)
			out, err := h(msg)
			msg.SetContext(ctx)
			if recording {
				recordOutcome(span, d, err)
			}
			if len(out) > 0 {
				continueTrace(ctx, out, parentTP, prop)
			}
			return out, err
		}
	}
}

// continueTrace makes the messages a handler returned children of the
// consumer span in ctx. A message keeps a span context of its own: one in
// its context, or a traceparent other than the incoming message's
// (incomingTP), which a handler that copies the incoming metadata carries
// along by accident.
//
//go:noinline
func continueTrace(ctx context.Context, out []*message.Message, incomingTP string, prop propagation.TextMapPropagator) {
	detached := msgtrace.Detach(ctx)
	for _, m := range out {
		if m == nil || msgtrace.Valid(m.Context()) {
			continue
		}
		if tp := m.Metadata.Get(router.KeyTraceParent); tp != "" && tp != incomingTP {
			continue
		}
		m.SetContext(detached)
		msgtrace.Inject(detached, m, prop)
	}
}

// newHandlerInfo builds the span name and start options of a handler, once.
//
//go:noinline
func newHandlerInfo(ctx context.Context, system string) *handlerInfo {
	topic := message.SubscribeTopicFromCtx(ctx)
	handler := message.HandlerNameFromCtx(ctx)
	return &handlerInfo{
		handler:  handler,
		topic:    topic,
		spanName: "process " + topic,
		spanOpts: []trace.SpanStartOption{
			trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(
				semconv.MessagingSystemKey.String(system),
				semconv.MessagingDestinationName(topic),
				semconv.MessagingOperationTypeProcess,
				semconv.MessagingOperationName("process"),
				AttrHandler.String(handler),
			),
		},
	}
}

// recordOutcome records attempts and a failure (returned or dead-lettered)
// on the consumer span.
//
//go:noinline
func recordOutcome(span trace.Span, d *delivery, err error) {
	if n := d.attempt.Load(); n > 1 {
		span.SetAttributes(AttrAttempts.Int(int(n)))
	}
	switch {
	case err != nil:
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(semconv.ErrorType(err))
	case d.deadLettered && d.lastErr != nil:
		span.RecordError(d.lastErr)
		span.SetStatus(codes.Error, d.lastErr.Error())
		span.SetAttributes(semconv.ErrorType(d.lastErr), AttrDeadLetterTopic.String(d.deadTopic))
	}
}

// decorated reports whether pub, or a publisher it decorates (Unwrap),
// is a D.
func decorated[D message.Publisher](pub message.Publisher) bool {
	for pub != nil {
		if _, ok := pub.(D); ok {
			return true
		}
		u, ok := pub.(interface{ Unwrap() message.Publisher })
		if !ok {
			return false
		}
		pub = u.Unwrap()
	}
	return false
}

// TracingPublisher decorates pub so each published message gets a producer
// span ("send <topic>", kind Producer, messaging semantic-convention
// attributes), a child of the span in the message's context (msg.Context():
// router.NewMessage and hexeract's App.Publish set it to the caller's
// context) or, when that context has none, of the span context the
// message's traceparent metadata carries (a message relayed by the outbox
// or handed off by the scheduler), and carries that span's context in its metadata as W3C
// traceparent/tracestate. A publish error is recorded on the spans.
// Decorating a publisher that already is, or wraps, a TracingPublisher
// returns it unchanged.
func TracingPublisher(pub message.Publisher, opts TracingOptions) message.Publisher {
	if decorated[*tracingPublisher](pub) {
		return pub
	}
	return &tracingPublisher{
		pub:    pub,
		tracer: opts.tracer(),
		prop:   opts.propagator(),
		system: semconv.MessagingSystemKey.String(opts.system()),
	}
}

type tracingPublisher struct {
	pub    message.Publisher
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	system attribute.KeyValue
}

func (p *tracingPublisher) Publish(topic string, msgs ...*message.Message) error {
	spanOpts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			p.system,
			semconv.MessagingDestinationName(topic),
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("send"),
		),
	}
	if len(msgs) > 1 {
		spanOpts = append(spanOpts, trace.WithAttributes(semconv.MessagingBatchMessageCount(len(msgs))))
	}
	name := "send " + topic
	spans := make([]trace.Span, len(msgs))
	for i, msg := range msgs {
		parent := msg.Context()
		if !msgtrace.Valid(parent) {
			parent = msgtrace.Extract(parent, msg.Metadata, p.prop)
		}
		ctx, span := p.tracer.Start(parent, name, spanOpts...)
		if span.IsRecording() {
			msgtrace.SetMessageAttributes(span, msg)
		}
		msgtrace.Inject(ctx, msg, p.prop)
		spans[i] = span
	}
	err := p.pub.Publish(topic, msgs...)
	for _, span := range spans {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
	return err
}

func (p *tracingPublisher) Close() error { return p.pub.Close() }

// Unwrap returns the decorated publisher.
func (p *tracingPublisher) Unwrap() message.Publisher { return p.pub }
