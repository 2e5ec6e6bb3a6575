package saga

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/outbox"
	"github.com/jackc/pgx/v5/pgxpool"
)

type benchStarted struct{ ID string }

func (benchStarted) MessageType() string { return "bench.started" }

type benchEvent struct {
	ID string
	N  int
}

func (benchEvent) MessageType() string { return "bench.event" }

type benchSent struct {
	ID string
	N  int
}

func (benchSent) MessageType() string { return "bench.sent" }

type benchState struct {
	Count int
	Last  int
}

// BenchmarkTransition measures saga transitions per second on PostgreSQL
// (each loads the instance, runs the handler, saves the state with its
// version check and writes one outgoing message to the outbox, in one
// transaction) beside the raw commit rate of one-row transactions (BEGIN;
// INSERT; COMMIT) on the same pool in the same run. Both run with the same
// number of goroutines and connections; each goroutine drives its own saga
// instance (no conflicts). The saga sub-benchmark reports pct_of_raw.
//
//	go test -run '^$' -bench BenchmarkTransition -benchmem ./saga/
func BenchmarkTransition(b *testing.B) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(testenv.PostgresURL(b))
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = 16
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	sfx := testenv.Suffix()
	raw, storeTable, obTable, obNotifyTable := "saga_bench_raw_"+sfx, "saga_bench_"+sfx, "saga_bench_ob_"+sfx, "saga_bench_obn_"+sfx
	defer func() {
		for _, t := range []string{raw, storeTable, obTable, obTable + "_dead", obTable + "_delivered", obNotifyTable, obNotifyTable + "_dead", obNotifyTable + "_delivered"} {
			_, _ = pool.Exec(ctx, `DROP TABLE IF EXISTS `+t)
		}
		_, _ = pool.Exec(ctx, `DELETE FROM hexeract_schema_migrations WHERE component LIKE '%'||$1`, sfx)
	}()
	if _, err := pool.Exec(ctx, `CREATE TABLE `+raw+` (id bigint PRIMARY KEY, payload jsonb NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	store, err := NewPostgresStore(ctx, pool, WithTable(storeTable))
	if err != nil {
		b.Fatal(err)
	}
	// Two outboxes: one without NOTIFY (relays are woken in-process by
	// Outbox.Signal, which the saga calls after each commit, and poll), one
	// with the outbox's default NOTIFY per transaction.
	ob, err := outbox.New(pool, outbox.WithTable(obTable), outbox.WithoutNotify())
	if err != nil {
		b.Fatal(err)
	}
	obNotify, err := outbox.New(pool, outbox.WithTable(obNotifyTable))
	if err != nil {
		b.Fatal(err)
	}
	for _, o := range []*outbox.Outbox{ob, obNotify} {
		if err := o.Migrate(ctx); err != nil {
			b.Fatal(err)
		}
	}
	app, err := hexeract.New()
	if err != nil {
		b.Fatal(err)
	}
	defer app.Close()
	handler := func(c *Context[benchState], s *benchState, e benchEvent) error {
		s.Count++
		s.Last = e.N
		c.Send(benchSent(e))
		return nil
	}
	newRuntime := func(name string, o *outbox.Outbox) *runtime[benchState] {
		def := Define[benchState](name)
		StartedBy(def, func(e benchStarted) string { return e.ID },
			func(c *Context[benchState], s *benchState, e benchStarted) error { return nil })
		Handles(def, func(e benchEvent) string { return e.ID }, handler)
		rt, err := register(app, def, store, WithOutbox(o))
		if err != nil {
			b.Fatal(err)
		}
		return rt
	}
	runtimes := []struct {
		name string
		rt   *runtime[benchState]
	}{
		{"saga_transition", newRuntime("bench", ob)},
		{"saga_transition_outbox_notify", newRuntime("bench_notify", obNotify)},
	}

	const parallelism = 4 // goroutines per GOMAXPROCS, for both sub-benchmarks
	var rawNs float64
	var rowID atomic.Int64
	b.Run("raw_commit", func(b *testing.B) {
		b.SetParallelism(parallelism)
		b.ReportAllocs()
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				tx, err := pool.Begin(ctx)
				if err != nil {
					b.Error(err)
					return
				}
				if _, err := tx.Exec(ctx, `INSERT INTO `+raw+` (id, payload) VALUES ($1, $2)`, rowID.Add(1), `{"count":1}`); err != nil {
					b.Error(err)
					return
				}
				if err := tx.Commit(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
		rawNs = float64(time.Since(start).Nanoseconds()) / float64(b.N)
		b.ReportMetric(1e9/rawNs, "commits/s")
	})

	var instance atomic.Int64
	for _, r := range runtimes {
		rt := r.rt
		b.Run(r.name, func(b *testing.B) {
			b.SetParallelism(parallelism)
			b.ReportAllocs()
			b.StopTimer()
			// Setup outside the timer: one started instance per goroutine.
			keys := make(chan string, 1024)
			for range parallelism * 2 * 8 {
				key := fmt.Sprintf("i-%d", instance.Add(1))
				if err := rt.runPhase(ctx, key, "bench.started", true, phaseEvent, nil, func(c *Context[benchState], s *benchState) error { return nil }); err != nil {
					b.Fatal(err)
				}
				keys <- key
			}
			b.StartTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				key := <-keys
				n := 0
				for pb.Next() {
					n++
					e := benchEvent{ID: key, N: n}
					if err := rt.runPhase(ctx, key, "bench.event", false, phaseEvent, nil, func(c *Context[benchState], s *benchState) error {
						return handler(c, s, e)
					}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			ns := float64(time.Since(start).Nanoseconds()) / float64(b.N)
			b.ReportMetric(1e9/ns, "transitions/s")
			if rawNs > 0 {
				b.ReportMetric(100*rawNs/ns, "pct_of_raw")
			}
		})
	}
}
