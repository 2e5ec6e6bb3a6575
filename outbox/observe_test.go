package outbox_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/store/postgres"
)

func TestNotificationWakesRelayWithoutPolling(t *testing.T) {
	for _, inTx := range []bool{false, true} {
		t.Run(fmt.Sprintf("notify_in_tx=%v", inTx), func(t *testing.T) {
			var opts []outbox.Option
			if inTx {
				opts = append(opts, outbox.WithNotifyInTx())
			}
			pool, ob, _ := newOutbox(t, opts...)
			rec := newRecorder()
			r, err := ob.NewRelay(rec, outbox.WithPollInterval(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			outbox.IgnoreLocalSignals(r) // as if the relay ran in another process
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			t.Cleanup(func() { cancel(); <-done })
			time.Sleep(300 * time.Millisecond) // let the relay do its first, empty round and LISTEN
			start := time.Now()
			publishN(t, pool, ob, 1, 1) // a plain commit
			if !inTx {
				time.Sleep(300 * time.Millisecond)
				if rec.distinct() != 0 {
					t.Fatal("relay woke without a notification")
				}
				ob.Signal() // notification from outside the producer's transaction
			}
			waitFor(t, 5*time.Second, "delivery through LISTEN/NOTIFY", func() bool { return rec.distinct() == 1 })
			t.Logf("commit to publish through NOTIFY: %v", time.Since(start))
		})
	}
}

func TestSignalWakesRelayInProcess(t *testing.T) {
	_, ob, _ := newOutbox(t, outbox.WithoutNotify())
	rec := newRecorder()
	r, err := ob.NewRelay(rec, outbox.WithPollInterval(time.Hour), outbox.WithoutListen())
	if err != nil {
		t.Fatal(err)
	}
	testenv.Run(t, "relay", 15*time.Second, r.Run)
	time.Sleep(300 * time.Millisecond)
	ctx := context.Background()
	if err := ob.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		_, err := ob.Publish(ctx, tx, UserRegistered{UserID: "s"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "delivery through Signal", func() bool { return rec.distinct() == 1 })
}

func TestMetricsAndTraceContext(t *testing.T) {
	pool, ob, table := newOutbox(t)
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))

	// Each message gets a "create" span, a child of the producer's span,
	// whose context is stored with the row.
	traced, err := outbox.New(postgres.New(pool), outbox.WithTable(table), outbox.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	pctx, producer := tp.Tracer("test").Start(ctx, "register user")
	if err := pgx.BeginFunc(pctx, pool, func(tx pgx.Tx) error {
		_, err := traced.Publish(pctx, tx, UserRegistered{UserID: "t"}, UserRegistered{UserID: "u"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	producer.End()
	publishN(t, pool, ob, 3, 3)

	// Before the relay runs, the gauges show 5 pending rows.
	rec := newRecorder()
	stop := runRelay(t, pool, rec, outbox.WithTable(table), outbox.WithMeterProvider(mp), outbox.WithTracerProvider(tp),
		outbox.WithStatsInterval(50*time.Millisecond), outbox.WithBatchSize(100))
	waitFor(t, 5*time.Second, "delivery", func() bool { return rec.distinct() == 5 })
	waitFor(t, 5*time.Second, "commit", func() bool { return pending(t, ob).Pending == 0 })
	time.Sleep(150 * time.Millisecond) // a stats refresh after the drain

	// Gauges are observed while the relay runs.
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	stop()
	got := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					got[m.Name] += float64(p.Value)
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					got[m.Name] = float64(p.Value)
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					got[m.Name] = p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					got[m.Name] += float64(p.Count)
				}
			}
		}
	}
	if got["hexeract.outbox.relayed"] != 5 {
		t.Fatalf("relayed = %v (all metrics %v)", got["hexeract.outbox.relayed"], got)
	}
	for _, name := range []string{"hexeract.outbox.pending", "hexeract.outbox.oldest_pending_age", "hexeract.outbox.dead_rows", "hexeract.outbox.last_progress_age", "hexeract.outbox.batch.duration"} {
		if _, ok := got[name]; !ok {
			t.Fatalf("metric %s missing (got %v)", name, got)
		}
	}
	if got["hexeract.outbox.pending"] != 0 {
		t.Fatalf("pending gauge = %v after the drain", got["hexeract.outbox.pending"])
	}

	traceID := producer.SpanContext().TraceID()
	creates := map[string]bool{} // span ids of the create spans
	for _, s := range spans.Ended() {
		if s.Name() != "create users.registered" {
			continue
		}
		if s.Parent().SpanID() != producer.SpanContext().SpanID() || s.SpanKind() != trace.SpanKindProducer {
			t.Fatalf("create span: parent %s kind %s, want a producer child of %s", s.Parent().SpanID(), s.SpanKind(), producer.SpanContext().SpanID())
		}
		if a := attrs(s); a["messaging.operation.type"] != "create" || a["messaging.destination.name"] != "users.registered" || a["messaging.message.id"] == "" {
			t.Fatalf("create span attributes %v", a)
		}
		creates[s.SpanContext().SpanID().String()] = true
	}
	if len(creates) != 2 {
		t.Fatalf("%d create spans, want 2", len(creates))
	}
	continued := 0
	for _, m := range rec.messages() {
		if tp := m.Metadata.Get(router.KeyTraceParent); tp != "" {
			parts := strings.Split(tp, "-")
			if len(parts) != 4 || parts[1] != traceID.String() || !creates[parts[2]] {
				t.Fatalf("traceparent %s is not the context of a create span of trace %s", tp, traceID)
			}
			continued++
		}
	}
	if continued != 2 {
		t.Fatalf("%d delivered messages carry the producer's trace, want 2", continued)
	}
	var batchSpans, linked int
	for _, s := range spans.Ended() {
		if s.Name() == "publish users.registered" {
			batchSpans++
			for _, l := range s.Links() {
				if l.SpanContext.TraceID() == traceID && creates[l.SpanContext.SpanID().String()] {
					linked++
				}
			}
			if a := attrs(s); a["messaging.operation.name"] != "publish" || a["messaging.operation.type"] != "send" || a["outbox.table"] != table {
				t.Fatalf("relay span attributes %v", a)
			}
			// Every traced row of the batch is in one trace: the span
			// is in it too.
			if s.SpanContext().TraceID() != traceID || !creates[s.Parent().SpanID().String()] {
				t.Fatalf("relay span is not a child of a create span of the producer's trace")
			}
		}
	}
	if batchSpans == 0 || linked != 2 {
		t.Fatalf("%d relay publish spans, %d links to the create spans; want >=1 and 2", batchSpans, linked)
	}
}

func attrs(s sdktrace.ReadOnlySpan) map[string]string {
	out := map[string]string{}
	for _, kv := range s.Attributes() {
		out[string(kv.Key)] = kv.Value.String()
	}
	return out
}

func TestRetentionKeepsDeliveredRowsThenCleans(t *testing.T) {
	pool, ob, table := newOutbox(t)
	ctx := context.Background()
	publishN(t, pool, ob, 50, 50)
	rec := newRecorder()
	stop := runRelay(t, pool, rec, outbox.WithTable(table), outbox.WithRetention(time.Hour))
	waitFor(t, 5*time.Second, "delivery", func() bool { return rec.distinct() == 50 })
	waitFor(t, 5*time.Second, "commit", func() bool { return pending(t, ob).Pending == 0 })
	stop()
	st := pending(t, ob)
	if st.Pending != 0 || st.Delivered != 50 {
		t.Fatalf("with retention: %+v", st)
	}
	if n, err := ob.CleanupDelivered(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("cleanup of young rows = %d, %v", n, err)
	}
	if n, err := ob.CleanupDelivered(ctx, 0); err != nil || n != 50 {
		t.Fatalf("cleanup = %d, %v", n, err)
	}
}
