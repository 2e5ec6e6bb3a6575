package saga

import (
	"context"
	"fmt"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/store/postgres"
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

// benchParallelism is the number of goroutines per GOMAXPROCS driving the
// database in every benchmark here (8 on the 2-core machine).
const benchParallelism = 4

// benchEnv is the PostgreSQL setup shared by the benchmarks: a pool of 16
// connections, a raw one-row table, a saga store and one saga runtime per
// outbox configuration.
type benchEnv struct {
	pool     *pgxpool.Pool
	raw      string
	rowID    atomic.Int64
	instance atomic.Int64
	runtimes []benchRuntime
}

type benchRuntime struct {
	name string
	rt   *runtime[benchState]
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
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
	b.Cleanup(pool.Close)
	sfx := testenv.Suffix()
	e := &benchEnv{pool: pool, raw: "saga_bench_raw_" + sfx}
	storeTable := "saga_bench_" + sfx
	obTables := []string{"saga_bench_ob_" + sfx, "saga_bench_obq_" + sfx, "saga_bench_obt_" + sfx}
	b.Cleanup(func() {
		drop := []string{e.raw, storeTable, storeTable + "_history"}
		for _, t := range obTables {
			drop = append(drop, t, t+"_dead", t+"_delivered")
		}
		for _, t := range drop {
			_, _ = pool.Exec(ctx, `DROP TABLE IF EXISTS `+t)
		}
		_, _ = pool.Exec(ctx, `DELETE FROM hexeract_schema_migrations WHERE component LIKE '%'||$1`, sfx)
	})
	if _, err := pool.Exec(ctx, `CREATE TABLE `+e.raw+` (id bigint PRIMARY KEY, payload jsonb NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	store, err := NewSQLStore(postgres.New(pool), WithTable(storeTable))
	if err != nil {
		b.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	// Three outbox configurations: the default (the NOTIFY that wakes
	// relays in other processes is sent by Outbox.Signal after the commit,
	// on a connection of its own; the saga calls Signal after each commit),
	// without NOTIFY (relays poll), and NOTIFY inside the producer's
	// transaction.
	outboxes := make([]*outbox.Outbox[pgx.Tx], len(obTables))
	for i, opt := range []outbox.Option{nil, outbox.WithoutNotify(), outbox.WithNotifyInTx()} {
		if outboxes[i], err = outbox.New(postgres.New(pool), outbox.WithTable(obTables[i]), opt); err != nil {
			b.Fatal(err)
		}
		if err := outboxes[i].Migrate(ctx); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(outboxes[i].Close)
	}
	app, err := hexeract.New()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = app.Close() })
	newRuntime := func(name string, o *outbox.Outbox[pgx.Tx]) *runtime[benchState] {
		def := Define[benchState](name)
		StartedBy(def, func(e benchStarted) string { return e.ID },
			func(c *Context[benchState], s *benchState, e benchStarted) error { return nil })
		Handles(def, func(e benchEvent) string { return e.ID }, benchHandler)
		rt, err := register(app, def, store, WithOutbox(o))
		if err != nil {
			b.Fatal(err)
		}
		return rt
	}
	e.runtimes = []benchRuntime{
		{"outbox_default", newRuntime("bench", outboxes[0])},
		{"outbox_without_notify", newRuntime("bench_quiet", outboxes[1])},
		{"outbox_notify_in_tx", newRuntime("bench_notify_tx", outboxes[2])},
	}
	return e
}

// benchHandler is the transition: update the state, send one message.
func benchHandler(c *Context[benchState], s *benchState, e benchEvent) error {
	s.Count++
	s.Last = e.N
	c.Send(benchSent(e))
	return nil
}

// rawCommit is one one-row transaction: BEGIN; INSERT; COMMIT.
func (e *benchEnv) rawCommit(ctx context.Context) error {
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+e.raw+` (id, payload) VALUES ($1, $2)`, e.rowID.Add(1), `{"count":1}`); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	return tx.Commit(ctx)
}

// newInstance starts a saga instance and returns its key.
func (e *benchEnv) newInstance(b *testing.B, rt *runtime[benchState]) string {
	key := fmt.Sprintf("i-%d", e.instance.Add(1))
	if err := rt.runPhase(context.Background(), key, "bench.started", true, phaseEvent, nil,
		func(c *Context[benchState], s *benchState) error { return nil }); err != nil {
		b.Fatal(err)
	}
	return key
}

// transition runs one saga transition on the instance key.
func transition(ctx context.Context, rt *runtime[benchState], key string, n int) error {
	e := benchEvent{ID: key, N: n}
	return rt.runPhase(ctx, key, "bench.event", false, phaseEvent, nil, func(c *Context[benchState], s *benchState) error {
		return benchHandler(c, s, e)
	})
}

// BenchmarkTransition measures saga transitions per second on PostgreSQL
// (each loads the instance, runs the handler, saves the state with its
// version check and writes one outgoing message to the outbox, in one
// transaction) and, as raw_commit, the commit rate of one-row transactions
// (BEGIN; INSERT; COMMIT) on the same pool, with the same goroutines. Each
// goroutine drives its own saga instance (no conflicts).
//
//	go test -run '^$' -bench 'BenchmarkTransition$' -benchmem ./saga/
func BenchmarkTransition(b *testing.B) {
	env := newBenchEnv(b)
	ctx := context.Background()
	b.Run("raw_commit", func(b *testing.B) {
		b.SetParallelism(benchParallelism)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := env.rawCommit(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
	})
	for _, r := range env.runtimes {
		b.Run("saga_"+r.name, func(b *testing.B) {
			b.SetParallelism(benchParallelism)
			b.ReportAllocs()
			keys := make(chan string, 64)
			for range benchParallelism * goruntime.GOMAXPROCS(0) {
				keys <- env.newInstance(b, r.rt)
			}
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				key := <-keys
				for n := 1; pb.Next(); n++ {
					if err := transition(ctx, r.rt, key, n); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "transitions/s")
		})
	}
}

// BenchmarkTransitionVsRaw gives the ratio of the saga transition rate to
// the raw one-row commit rate, measured interleaved so that load from other
// processes on the machine hits both alike: in rounds, all goroutines run a
// batch of raw commits, then (after a barrier) a batch of saga transitions.
// b.N counts transitions; each is paired with one raw commit, so ns/op
// covers both. pct_of_raw = transition rate / raw commit rate × 100.
//
//	go test -run '^$' -bench 'BenchmarkTransitionVsRaw' -benchmem ./saga/
func BenchmarkTransitionVsRaw(b *testing.B) {
	env := newBenchEnv(b)
	ctx := context.Background()
	workers := benchParallelism * goruntime.GOMAXPROCS(0)
	const batch = 25 // operations per goroutine per phase
	for _, r := range env.runtimes {
		b.Run(r.name, func(b *testing.B) {
			keys := make([]string, workers)
			for i := range keys {
				keys[i] = env.newInstance(b, r.rt)
			}
			phase := func(op func(w, i int) error) time.Duration {
				start := time.Now()
				var wg sync.WaitGroup
				for w := range workers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := range batch {
							if err := op(w, i); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				return time.Since(start)
			}
			var rawTime, sagaTime time.Duration
			b.ResetTimer()
			for done := 0; done < b.N; done += workers * batch {
				rawTime += phase(func(int, int) error { return env.rawCommit(ctx) })
				sagaTime += phase(func(w, i int) error { return transition(ctx, r.rt, keys[w], i) })
			}
			b.StopTimer()
			ops := float64((b.N + workers*batch - 1) / (workers * batch) * workers * batch)
			b.ReportMetric(ops/rawTime.Seconds(), "commits/s")
			b.ReportMetric(ops/sagaTime.Seconds(), "transitions/s")
			b.ReportMetric(100*rawTime.Seconds()/sagaTime.Seconds(), "pct_of_raw")
		})
	}
}
