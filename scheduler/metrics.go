package scheduler

import (
	"context"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

const instrumentation = "github.com/hexeract/hexeract/scheduler"

// WithMeterProvider sets the OpenTelemetry meter provider of the scheduler's
// metrics (default: the global one, otel.GetMeterProvider()). Every
// instrument carries the attribute scheduler.table:
//
//	hexeract.scheduler.handed_off  counter    messages handed to the sink (committed)
//	hexeract.scheduler.lateness    histogram  seconds from due time to hand-off commit, per message
//	hexeract.scheduler.errors      counter    failed claims and hand-offs (the messages stay scheduled)
//	hexeract.scheduler.cron.fired  counter    cron ticks fired by this replica (attribute cron.job)
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.meter = mp }
}

type metrics struct {
	table     attribute.KeyValue
	attrs     metric.MeasurementOption
	handedOff metric.Int64Counter
	errors    metric.Int64Counter
	fired     metric.Int64Counter
	lateness  metric.Float64Histogram
}

func newMetrics(mp metric.MeterProvider, table string) (*metrics, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	meter := mp.Meter(instrumentation)
	m := &metrics{table: attribute.String("scheduler.table", table)}
	m.attrs = metric.WithAttributes(m.table)
	var err error
	counter := func(name, desc string) metric.Int64Counter {
		if err != nil {
			return nil
		}
		var c metric.Int64Counter
		c, err = meter.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit("{message}"))
		return c
	}
	m.handedOff = counter("hexeract.scheduler.handed_off", "Due messages handed to the sink (committed)")
	m.errors = counter("hexeract.scheduler.errors", "Failed claims and hand-offs; their messages stay scheduled")
	m.fired = counter("hexeract.scheduler.cron.fired", "Cron ticks fired by this replica")
	if err != nil {
		return nil, err
	}
	m.lateness, err = meter.Float64Histogram("hexeract.scheduler.lateness", metric.WithUnit("s"),
		metric.WithDescription("Time from a message's due time to the commit of its hand-off"),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60))
	if err != nil {
		return nil, err
	}
	return m, nil
}

// handOff records a committed batch.
func (m *metrics) handOff(ctx context.Context, batch []claimed, at time.Time) {
	m.handedOff.Add(ctx, int64(len(batch)), m.attrs)
	for _, c := range batch {
		m.lateness.Record(ctx, max(0, at.Sub(c.due).Seconds()), m.attrs)
	}
}
