// Package msgtrace is the span and trace-context plumbing shared by
// Hexeract's packages: how a message's W3C trace context is read from and
// written to its metadata, which span a message continues, and the
// producer "create" span of the OpenTelemetry messaging semantic
// conventions that the outbox and the scheduler start for each message they
// store.
package msgtrace

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/hexeract/hexeract/router"
)

// System is the messaging.system attribute of spans whose transport is not
// known (the outbox, the scheduler).
const System = "hexeract"

// TraceContext is the propagator of message metadata: W3C traceparent and
// tracestate, whatever the global propagator is.
var TraceContext propagation.TextMapPropagator = propagation.TraceContext{} //nolint:gochecknoglobals // a stateless propagator value, never reassigned (internal package)

// Tracer returns the tracer named scope of tp, or of the global provider
// when tp is nil.
func Tracer(tp trace.TracerProvider, scope string) trace.Tracer {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(scope)
}

// traceContextFields are the metadata keys of W3C Trace Context, computed
// once (Fields allocates).
var traceContextFields = propagation.TraceContext{}.Fields() //nolint:gochecknoglobals // computed once, only read

// Fields returns the metadata keys prop writes, without allocating for W3C
// Trace Context.
func Fields(prop propagation.TextMapPropagator) []string {
	if _, ok := prop.(propagation.TraceContext); ok {
		return traceContextFields
	}
	return prop.Fields()
}

// HasContext reports whether md carries a trace context for prop.
func HasContext(md message.Metadata, prop propagation.TextMapPropagator) bool {
	return HasAny(md, Fields(prop))
}

// HasAny reports whether md has one of keys.
func HasAny(md message.Metadata, keys []string) bool {
	for _, k := range keys {
		if _, ok := md[k]; ok {
			return true
		}
	}
	return false
}

// Extract returns ctx with the span context that md carries, or ctx itself
// when md carries none.
func Extract(ctx context.Context, md message.Metadata, prop propagation.TextMapPropagator) context.Context {
	if !HasContext(md, prop) {
		return ctx
	}
	return prop.Extract(ctx, propagation.MapCarrier(md))
}

// Inject writes the span context of ctx into msg's metadata (replacing the
// one it had); it does nothing when ctx has no valid span context.
func Inject(ctx context.Context, msg *message.Message, prop propagation.TextMapPropagator) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	if msg.Metadata == nil {
		msg.Metadata = make(message.Metadata)
	}
	for _, k := range Fields(prop) {
		delete(msg.Metadata, k)
	}
	prop.Inject(ctx, propagation.MapCarrier(msg.Metadata))
}

// Detach returns a context that carries only the span context of ctx: no
// deadline, no cancellation, no other values. A message that outlives the
// handler which built it (a timer, a later publish) keeps its trace with it.
func Detach(ctx context.Context) context.Context {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return context.Background()
	}
	return trace.ContextWithSpanContext(context.Background(), sc)
}

// Valid reports whether ctx carries a valid span context.
func Valid(ctx context.Context) bool { return trace.SpanContextFromContext(ctx).IsValid() }

// MessageParent returns the context a span about msg should be a child of:
// the span in msg.Context(), else the one msg's metadata carries, else ctx.
// Use it where the message brings its own trace (a message built by an
// earlier step and handed over, a stored message published later).
func MessageParent(ctx context.Context, msg *message.Message) context.Context {
	if mctx := msg.Context(); Valid(mctx) {
		if ctx == nil || !Valid(ctx) {
			return mctx
		}
		return trace.ContextWithSpanContext(ctx, trace.SpanContextFromContext(mctx))
	}
	if HasContext(msg.Metadata, TraceContext) {
		return TraceContext.Extract(ctx, propagation.MapCarrier(msg.Metadata))
	}
	return ctx
}

// CallerParent returns the context a span about msg should be a child of
// when the caller's step caused the message (scheduling a timeout or a
// redelivery from a handler): ctx when it carries a span, else
// [MessageParent].
func CallerParent(ctx context.Context, msg *message.Message) context.Context {
	if Valid(ctx) {
		return ctx
	}
	return MessageParent(ctx, msg)
}

// MessageID is the CloudEvents id of msg, or its Watermill UUID.
func MessageID(msg *message.Message) string {
	if id := msg.Metadata.Get(router.KeyID); id != "" {
		return id
	}
	return msg.UUID
}

// SetMessageAttributes sets messaging.message.id and, when msg has a
// correlation id, messaging.message.conversation_id on span.
func SetMessageAttributes(span trace.Span, msg *message.Message) {
	id := semconv.MessagingMessageID(MessageID(msg))
	if c := router.CorrelationIDOf(msg.Metadata); c != "" {
		span.SetAttributes(id, semconv.MessagingMessageConversationID(c))
		return
	}
	span.SetAttributes(id)
}

// Creator starts the "create" spans of one component.
type Creator struct {
	tracer trace.Tracer
	system attribute.KeyValue
	extra  []attribute.KeyValue
}

// NewCreator returns a Creator on tracer whose spans carry messaging.system
// system and the attributes extra.
func NewCreator(tracer trace.Tracer, system string, extra ...attribute.KeyValue) *Creator {
	if system == "" {
		system = System
	}
	return &Creator{tracer: tracer, system: semconv.MessagingSystemKey.String(system), extra: extra}
}

// Create starts the producer span "create <topic>" (messaging operation
// type and name "create") as a child of parent, and writes its context into
// msg's metadata: that is the creation context the message carries to its
// consumers. The caller ends the span (with [End]).
func (c *Creator) Create(parent context.Context, topic string, msg *message.Message, extra ...attribute.KeyValue) trace.Span {
	ctx, span := c.tracer.Start(parent, "create "+topic, trace.WithSpanKind(trace.SpanKindProducer))
	if span.IsRecording() {
		span.SetAttributes(c.system,
			semconv.MessagingDestinationName(topic),
			semconv.MessagingOperationTypeCreate,
			semconv.MessagingOperationName("create"))
		span.SetAttributes(c.extra...)
		span.SetAttributes(extra...)
		SetMessageAttributes(span, msg)
	}
	Inject(ctx, msg, TraceContext)
	return span
}

// End ends spans, recording err on each when it is not nil.
func End(spans []trace.Span, err error) {
	for _, s := range spans {
		if err != nil {
			s.RecordError(err)
			s.SetStatus(codes.Error, err.Error())
		}
		s.End()
	}
}
