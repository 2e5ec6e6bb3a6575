package middleware

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Metric instrument names. The first two are OpenTelemetry messaging
// semantic-convention metrics; the others are Hexeract's, under the
// hexeract.messaging namespace, with the same attributes.
const (
	MetricConsumed     = "messaging.client.consumed.messages"        // counter {message}, error.type set on failures
	MetricDuration     = "messaging.process.duration"                // histogram, seconds, all attempts included
	MetricFailed       = "hexeract.messaging.failed.messages"        // counter: final failures (nacked or dead-lettered)
	MetricRetried      = "hexeract.messaging.retries"                // counter: retry attempts
	MetricDeadLettered = "hexeract.messaging.dead_lettered.messages" // counter: messages moved to a dead-letter topic
)

// MetricsOptions configure [Metrics]. The zero value uses the global meter
// provider.
type MetricsOptions struct {
	// MeterProvider creates the meter; nil means otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// System is the messaging.system attribute; "" means DefaultSystem.
	System string
}

type metrics struct {
	consumed, failed, retried, dead metric.Int64Counter
	duration                        metric.Float64Histogram
	system                          string
}

type metricAttrs struct {
	set    attribute.Set
	add    []metric.AddOption    // pre-built so Add does not allocate a slice per message
	record []metric.RecordOption // same for Record
}

func newMetricAttrs(set attribute.Set) *metricAttrs {
	opt := metric.WithAttributeSet(set)
	return &metricAttrs{set: set, add: []metric.AddOption{opt}, record: []metric.RecordOption{opt}}
}

// Metrics returns middleware that records, per handler and topic, the
// messages consumed, the handling duration (all attempts and the
// dead-letter publish included), the final failures, the retries and the
// dead letters. Attributes: messaging.system, messaging.destination.name,
// messaging.operation.name and .type ("process"), hexeract.handler.name, and
// error.type on failures. It must run outside [Retry] and [DeadLetter] to see
// their counts. It returns an error when an instrument cannot be created.
func Metrics(opts MetricsOptions) (message.HandlerMiddleware, error) {
	mp := opts.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	meter := mp.Meter(ScopeName)
	m := &metrics{system: opts.System}
	if m.system == "" {
		m.system = DefaultSystem
	}
	var err error
	if m.consumed, err = meter.Int64Counter(MetricConsumed, metric.WithUnit("{message}"),
		metric.WithDescription("Messages delivered to a handler.")); err != nil {
		return nil, fmt.Errorf("hexeract: metric %s: %w", MetricConsumed, err)
	}
	if m.failed, err = meter.Int64Counter(MetricFailed, metric.WithUnit("{message}"),
		metric.WithDescription("Messages whose handling failed for good (nacked or dead-lettered).")); err != nil {
		return nil, fmt.Errorf("hexeract: metric %s: %w", MetricFailed, err)
	}
	if m.retried, err = meter.Int64Counter(MetricRetried, metric.WithUnit("{retry}"),
		metric.WithDescription("Handler calls repeated after a failure.")); err != nil {
		return nil, fmt.Errorf("hexeract: metric %s: %w", MetricRetried, err)
	}
	if m.dead, err = meter.Int64Counter(MetricDeadLettered, metric.WithUnit("{message}"),
		metric.WithDescription("Messages moved to a dead-letter topic.")); err != nil {
		return nil, fmt.Errorf("hexeract: metric %s: %w", MetricDeadLettered, err)
	}
	if m.duration, err = meter.Float64Histogram(MetricDuration, metric.WithUnit("s"),
		metric.WithDescription("Time to handle a message, retries and dead-lettering included."),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)); err != nil {
		return nil, fmt.Errorf("hexeract: metric %s: %w", MetricDuration, err)
	}
	return m.middleware, nil
}

func (m *metrics) middleware(h message.HandlerFunc) message.HandlerFunc {
	var attrs atomic.Pointer[metricAttrs]
	return func(msg *message.Message) ([]*message.Message, error) {
		d := deliveryOf(msg)
		a := attrs.Load()
		if a == nil {
			a = m.handlerAttrs(msg.Context())
			attrs.Store(a)
		}
		start := time.Now()
		out, err := h(msg)
		elapsed := time.Since(start).Seconds()
		if err != nil || d.deadLettered || d.retries > 0 {
			m.recordUnusual(msg.Context(), a, d, err, elapsed)
			return out, err
		}
		ctx := msg.Context()
		m.consumed.Add(ctx, 1, a.add...)
		m.duration.Record(ctx, elapsed, a.record...)
		return out, err
	}
}

// handlerAttrs builds the attribute set of a handler, once.
//
//go:noinline
func (m *metrics) handlerAttrs(ctx context.Context) *metricAttrs {
	return newMetricAttrs(attribute.NewSet(
		semconv.MessagingSystemKey.String(m.system),
		semconv.MessagingDestinationName(message.SubscribeTopicFromCtx(ctx)),
		semconv.MessagingOperationName("process"),
		semconv.MessagingOperationTypeProcess,
		AttrHandler.String(message.HandlerNameFromCtx(ctx)),
	))
}

// recordUnusual records a delivery that failed, was dead-lettered or
// needed retries (off the hot path).
//
//go:noinline
func (m *metrics) recordUnusual(ctx context.Context, a *metricAttrs, d *delivery, err error, elapsed float64) {
	failure := err
	if failure == nil && d.deadLettered {
		failure = d.lastErr
	}
	outcome := a
	if failure != nil {
		outcome = newMetricAttrs(attribute.NewSet(append(a.set.ToSlice(), semconv.ErrorType(failure))...))
		m.failed.Add(ctx, 1, outcome.add...)
	}
	m.consumed.Add(ctx, 1, outcome.add...)
	m.duration.Record(ctx, elapsed, outcome.record...)
	if d.retries > 0 {
		m.retried.Add(ctx, int64(d.retries), a.add...)
	}
	if d.deadLettered {
		m.dead.Add(ctx, 1, outcome.add...)
	}
}
