package scheduler_test

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/scheduler"
)

func TestMetrics(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	sink := newTableSink(t, pool)
	s := newScheduler(t, pool, sink, "", scheduler.WithMeterProvider(mp))
	if _, err := s.ScheduleWith(context.Background(), scheduler.Exec(s), time.Now().Add(100*time.Millisecond), reminder{N: 1}, reminder{N: 2}, reminder{N: 3}); err != nil {
		t.Fatal(err)
	}
	run(t, s)
	sink.waitCount(t, 3, 5*time.Second)

	deadline := time.Now().Add(2 * time.Second)
	for {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		var handedOff int64
		var latenessCount uint64
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch d := m.Data.(type) {
				case metricdata.Sum[int64]:
					if m.Name == "hexeract.scheduler.handed_off" {
						for _, p := range d.DataPoints {
							if v, _ := p.Attributes.Value("scheduler.table"); v.AsString() == s.Table() {
								handedOff += p.Value
							}
						}
					}
				case metricdata.Histogram[float64]:
					if m.Name == "hexeract.scheduler.lateness" {
						for _, p := range d.DataPoints {
							latenessCount += p.Count
							if p.Count > 0 && (p.Sum < 0 || p.Sum > 3) {
								t.Fatalf("lateness sum %v s for %d messages", p.Sum, p.Count)
							}
						}
					}
				}
			}
		}
		if handedOff == 3 && latenessCount == 3 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("handed_off = %d, lateness count = %d; want 3 and 3", handedOff, latenessCount)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
