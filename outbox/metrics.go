package outbox

import (
	"context"
	"math"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

const instrumentation = "github.com/hexeract/hexeract/outbox"

// relayMetrics holds a relay's OpenTelemetry instruments. Every instrument
// carries the attribute outbox.table.
//
//	hexeract.outbox.relayed             counter    rows published and removed
//	hexeract.outbox.failed              counter    failed publish attempts
//	hexeract.outbox.dead                counter    rows moved to the dead table
//	hexeract.outbox.errors              counter    batches that failed on the database side
//	hexeract.outbox.batch.duration      histogram  seconds per batch (claim, publish, commit)
//	hexeract.outbox.pending             gauge      rows waiting in the outbox table
//	hexeract.outbox.oldest_pending_age  gauge      seconds since the oldest pending row was written
//	hexeract.outbox.dead_rows           gauge      rows in the dead table
//	hexeract.outbox.last_progress_age   gauge      seconds since this relay last committed a batch
//
// A stalled relay shows as a growing oldest_pending_age (and
// last_progress_age while rows are pending), not as silence.
type relayMetrics struct {
	tracer    trace.Tracer
	tableAttr attribute.KeyValue
	attrs     metric.MeasurementOption

	relayed, failed, dead, errors metric.Int64Counter
	batch                         metric.Float64Histogram

	pending, deadRows atomic.Int64
	oldestAge         atomic.Uint64 // float64 bits
	statsOK           atomic.Bool
	lastProgress      atomic.Int64 // unix nanos

	register func() (metric.Registration, error)
}

func newRelayMetrics(cfg relayConfig, t tables) (*relayMetrics, error) {
	mp := cfg.meter
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	tp := cfg.tracer
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	meter := mp.Meter(instrumentation)
	m := &relayMetrics{tracer: tp.Tracer(instrumentation), tableAttr: attribute.String("outbox.table", t.name.String())}
	m.attrs = metric.WithAttributes(m.tableAttr)
	m.lastProgress.Store(time.Now().UnixNano())
	var err error
	counter := func(name, desc string) metric.Int64Counter {
		if err != nil {
			return nil
		}
		var c metric.Int64Counter
		c, err = meter.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit("{message}"))
		return c
	}
	m.relayed = counter("hexeract.outbox.relayed", "Outbox rows published and removed from the outbox")
	m.failed = counter("hexeract.outbox.failed", "Failed publish attempts of outbox rows")
	m.dead = counter("hexeract.outbox.dead", "Outbox rows moved to the dead table after their last attempt")
	m.errors = counter("hexeract.outbox.errors", "Relay batches that failed on the database side")
	if err != nil {
		return nil, err
	}
	m.batch, err = meter.Float64Histogram("hexeract.outbox.batch.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to claim, publish and commit one relay batch"))
	if err != nil {
		return nil, err
	}
	pending, err := meter.Int64ObservableGauge("hexeract.outbox.pending", metric.WithUnit("{message}"),
		metric.WithDescription("Rows waiting in the outbox table"))
	if err != nil {
		return nil, err
	}
	oldest, err := meter.Float64ObservableGauge("hexeract.outbox.oldest_pending_age", metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest row waiting in the outbox table"))
	if err != nil {
		return nil, err
	}
	deadRows, err := meter.Int64ObservableGauge("hexeract.outbox.dead_rows", metric.WithUnit("{message}"),
		metric.WithDescription("Rows in the outbox's dead table"))
	if err != nil {
		return nil, err
	}
	progress, err := meter.Float64ObservableGauge("hexeract.outbox.last_progress_age", metric.WithUnit("s"),
		metric.WithDescription("Time since the relay last committed a batch"))
	if err != nil {
		return nil, err
	}
	m.register = func() (metric.Registration, error) {
		return meter.RegisterCallback(m.observe(pending, oldest, deadRows, progress), pending, oldest, deadRows, progress)
	}
	return m, nil
}

// observe reports the gauges; the callback is registered while the relay runs.
func (m *relayMetrics) observe(pending metric.Int64ObservableGauge, oldest metric.Float64ObservableGauge,
	deadRows metric.Int64ObservableGauge, progress metric.Float64ObservableGauge) metric.Callback {
	return func(_ context.Context, o metric.Observer) error {
		o.ObserveFloat64(progress, time.Since(time.Unix(0, m.lastProgress.Load())).Seconds(), m.attrs)
		if !m.statsOK.Load() {
			return nil
		}
		o.ObserveInt64(pending, m.pending.Load(), m.attrs)
		o.ObserveInt64(deadRows, m.deadRows.Load(), m.attrs)
		o.ObserveFloat64(oldest, math.Float64frombits(m.oldestAge.Load()), m.attrs)
		return nil
	}
}

func (m *relayMetrics) setStats(st Stats) {
	m.pending.Store(st.Pending)
	m.deadRows.Store(st.Dead)
	m.oldestAge.Store(math.Float64bits(st.OldestPendingAge.Seconds()))
	m.statsOK.Store(true)
}
