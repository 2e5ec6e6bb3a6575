package saga_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jackc/pgx/v5"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters/gochannel"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/saga"
	"github.com/hexeract/hexeract/scheduler"
	"github.com/hexeract/hexeract/store/postgres"
)

// fixture is one test's saga environment on one backend: the in-memory
// store, or the PostgreSQL store with a real outbox, relay and scheduler on
// tables of its own.
type fixture struct {
	t      *testing.T
	pg     bool
	store  saga.Store
	pool   *pgxpool.Pool
	drv    *postgres.Driver
	ob     *outbox.Outbox[pgx.Tx]
	sched  *scheduler.Scheduler[pgx.Tx]
	tables struct{ store, outbox, sched string }
}

// backends runs fn once on the in-memory store and once on PostgreSQL, as
// parallel subtests.
func backends(t *testing.T, fn func(t *testing.T, f *fixture)) {
	for _, pg := range []bool{false, true} {
		name := "memory"
		if pg {
			name = "postgres"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, newFixture(t, pg))
		})
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newFixture(t *testing.T, pg bool) *fixture {
	t.Helper()
	f := &fixture{t: t, pg: pg}
	if !pg {
		f.store = saga.NewMemoryStore()
		return f
	}
	ctx := context.Background()
	f.pool = testenv.Postgres(t)
	sfx := testenv.Suffix()
	f.tables.store, f.tables.outbox, f.tables.sched = "saga_t_"+sfx, "saga_ob_"+sfx, "saga_sch_"+sfx
	t.Cleanup(func() {
		for _, tbl := range []string{f.tables.store, f.tables.store + "_history", f.tables.outbox, f.tables.outbox + "_dead", f.tables.outbox + "_delivered",
			f.tables.sched, f.tables.sched + "_ticks", f.tables.sched + "_leases"} {
			_, _ = f.pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+tbl)
		}
		_, _ = f.pool.Exec(context.Background(), `DELETE FROM hexeract_schema_migrations WHERE component LIKE '%'||$1`, sfx)
	})
	f.drv = postgres.New(f.pool)
	sagas, err := saga.NewSQLStore(f.drv, saga.WithTable(f.tables.store))
	if err != nil {
		t.Fatal(err)
	}
	if err := sagas.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	f.store = sagas
	if f.ob, err = outbox.New(postgres.New(f.pool), outbox.WithTable(f.tables.outbox)); err != nil {
		t.Fatal(err)
	}
	if err := f.ob.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if f.sched, err = scheduler.New(postgres.New(f.pool), f.ob, scheduler.WithTable(f.tables.sched), scheduler.WithLogger(quietLogger())); err != nil {
		t.Fatal(err)
	}
	if err := f.sched.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return f
}

// opts returns the Register options of the backend (outbox and scheduler
// for PostgreSQL) followed by extra.
func (f *fixture) opts(extra ...saga.Option) []saga.Option {
	var o []saga.Option
	if f.pg {
		o = append(o, saga.WithOutbox(f.ob), saga.WithScheduler(f.sched))
	}
	o = append(o, saga.WithLogger(quietLogger()))
	return append(o, extra...)
}

// appConfig says what newApp attaches.
type appConfig struct {
	relay     bool // run an outbox relay to this App's transport (PostgreSQL)
	scheduler bool // run the scheduler poller (PostgreSQL)
}

// newApp returns an App on a fresh in-memory transport with fast retries
// (3 attempts, 10ms apart). With PostgreSQL it runs an outbox relay to that
// transport and the scheduler poller as App workers, as cfg says.
func (f *fixture) newApp(cfg appConfig) (*hexeract.App, *gochannel.PubSub) {
	f.t.Helper()
	ps := gochannel.New(gochannel.Config{Buffer: 1024}, nil)
	opts := []hexeract.Option{
		hexeract.WithPubSub(ps, ps),
		hexeract.WithLogger(quietLogger()),
		hexeract.WithDefaultMiddleware(func(c *middleware.DefaultConfig) {
			c.Retry.MaxAttempts = 3
			c.Retry.InitialInterval = 10 * time.Millisecond
			c.Retry.MaxInterval = 20 * time.Millisecond
		}),
	}
	if f.pg && cfg.relay {
		relay, err := outbox.NewRelay(postgres.New(f.pool), ps, outbox.WithTable(f.tables.outbox), outbox.WithLogger(quietLogger()),
			outbox.WithPollInterval(200*time.Millisecond))
		if err != nil {
			f.t.Fatal(err)
		}
		opts = append(opts, hexeract.WithWorker(relay))
	}
	if f.pg && cfg.scheduler {
		opts = append(opts, hexeract.WithWorker(f.sched))
	}
	app, err := hexeract.New(opts...)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = ps.Close() })
	return app, ps
}

// recorder collects the messages of one type that reach a handler.
type recorder[T router.Message] struct {
	mu   sync.Mutex
	msgs []T
	envs []router.Envelope
}

func record[T router.Message](t *testing.T, app *hexeract.App) *recorder[T] {
	t.Helper()
	r := &recorder[T]{}
	if err := hexeract.HandleFunc(app, func(ctx context.Context, m T) error {
		env, _ := router.EnvelopeFrom(ctx)
		r.mu.Lock()
		r.msgs = append(r.msgs, m)
		r.envs = append(r.envs, env)
		r.mu.Unlock()
		return nil
	}, hexeract.WithName("test.record."+m0[T]().MessageType())); err != nil {
		t.Fatal(err)
	}
	return r
}

func m0[T any]() T { var z T; return z }

func (r *recorder[T]) all() ([]T, []router.Envelope) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]T(nil), r.msgs...), append([]router.Envelope(nil), r.envs...)
}

func (r *recorder[T]) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// eventually polls cond every 10ms until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// instance returns the stored instance, or nil when there is none.
func (f *fixture) instance(sagaName, key string) *saga.Instance {
	f.t.Helper()
	in, err := f.store.Get(context.Background(), sagaName, key)
	if errors.Is(err, saga.ErrNotFound) {
		return nil
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return in
}

// count returns the rows of a table (PostgreSQL).
func (f *fixture) count(table, where string, args ...any) int {
	f.t.Helper()
	var n int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table+` `+where, args...).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

// subscribe returns the messages arriving on a raw topic of ps (dead letters).
func subscribe(t *testing.T, ps *gochannel.PubSub, topic string) <-chan *message.Message {
	t.Helper()
	ch, err := ps.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan *message.Message, 100)
	go func() {
		for m := range ch {
			m.Ack()
			out <- m
		}
	}()
	return out
}

func publish(t *testing.T, app *hexeract.App, msgs ...router.Message) {
	t.Helper()
	if err := app.Publish(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}
