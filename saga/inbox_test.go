package saga_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/saga"
	"github.com/hexeract/hexeract/store/postgres"
)

// newInbox returns an inbox on a table of the test's own.
func (f *fixture) newInbox() *outbox.Inbox[pgx.Tx] {
	f.t.Helper()
	table := "saga_in_" + testenv.Suffix()
	in, err := outbox.NewInbox(postgres.New(f.pool), outbox.WithInboxTable(table), outbox.WithSignal(f.ob))
	must(f.t, err)
	must(f.t, in.Migrate(context.Background()))
	f.t.Cleanup(func() {
		_, _ = f.pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+table)
		_, _ = f.pool.Exec(context.Background(), `DELETE FROM hexeract_schema_migrations WHERE component = $1`, "inbox:"+table)
	})
	return in
}

// A saga behind the inbox middleware (the documented way to get
// exactly-once effects) runs its transition in the inbox's transaction: when
// that transaction does not commit (here a middleware fails the message once
// after the saga handler returned, as a crash or a failed inbox commit
// would), the transition is rolled back with the claim, and the redelivery
// applies it once.
func TestInboxMiddlewareRollsBackTheTransitionWithTheClaim(t *testing.T) {
	f := newFixture(t, true)
	inbox := f.newInbox()
	app, _ := f.newApp(appConfig{})
	var failed atomic.Bool
	failOnceAfter := func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			if err == nil && msg.Metadata.Get(router.KeyType) == (Add{}).MessageType() && failed.CompareAndSwap(false, true) {
				return nil, errors.New("the inbox transaction did not commit")
			}
			return out, err
		}
	}
	app.Use(inbox.Middleware("svc"), failOnceAfter)
	must(t, saga.Register(app, counterSaga(), f.store, f.opts(saga.WithRetention(time.Hour))...))
	testenv.StartApp(t, app)
	publish(t, app, CounterStarted{ID: "i-1"})
	eventually(t, 10*time.Second, "started", func() bool { return f.instance("counter", "i-1") != nil })
	publish(t, app, Add{ID: "i-1", N: 1})
	eventually(t, 10*time.Second, "the event applied after its failed first attempt", func() bool {
		return failed.Load() && f.count(inbox.Table(), "WHERE consumer = 'svc'") == 2 // the start and the event
	})
	in := f.instance("counter", "i-1")
	if s := state2(t, in); s.Count != 1 || in.Version != 2 {
		t.Fatalf("after one event behind the inbox: count %d, version %d; want 1 and 2 (the rolled-back attempt must not count)", s.Count, in.Version)
	}
	if n := f.count(f.tables.outbox, ""); n != 1 {
		t.Fatalf("outbox holds %d messages, want 1", n)
	}
}

// Behind the inbox middleware a transition takes no second connection from
// the pool: with a pool of one connection, held by the inbox's transaction,
// the saga still runs.
func TestInboxMiddlewareNeedsNoSecondConnection(t *testing.T) {
	f := newFixture(t, true)
	cfg, err := pgxpool.ParseConfig(testenv.PostgresURL(t))
	must(t, err)
	cfg.MaxConns = 1
	small, err := pgxpool.NewWithConfig(context.Background(), cfg)
	must(t, err)
	t.Cleanup(small.Close)
	store, err := saga.NewSQLStore(postgres.New(small), saga.WithTable(f.tables.store))
	must(t, err)
	inbox, err := outbox.NewInbox(postgres.New(small), outbox.WithInboxTable(f.newInbox().Table()))
	must(t, err)
	app, _ := f.newApp(appConfig{})
	app.Use(inbox.Middleware("svc"))
	must(t, saga.Register(app, counterSaga(), store, f.opts()...))
	testenv.StartApp(t, app)
	publish(t, app, CounterStarted{ID: "i-2"})
	eventually(t, 10*time.Second, "the saga started with a one-connection pool behind the inbox", func() bool {
		return f.instance("counter", "i-2") != nil
	})
}

// Behind the inbox middleware, transitions that lose an
// optimistic-concurrency race roll back to their savepoint and run again in
// the same transaction: no update lost, one message per event.
func TestInboxMiddlewareConflictsRunAgain(t *testing.T) {
	f := newFixture(t, true)
	inbox := f.newInbox()
	const consumers, events = 3, 30
	apps := make([]*hexeract.App, consumers)
	var calls atomic.Int64
	for i := range apps {
		apps[i], _ = f.newApp(appConfig{})
		apps[i].Use(inbox.Middleware("svc"))
		must(t, saga.Register(apps[i], counterSaga(&calls), f.store, f.opts(saga.WithRetention(time.Hour))...))
		testenv.StartApp(t, apps[i])
	}
	publish(t, apps[0], CounterStarted{ID: "i-3"})
	eventually(t, 10*time.Second, "started", func() bool { return f.instance("counter", "i-3") != nil })
	var wg sync.WaitGroup
	for i, app := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := i; n < events; n += consumers {
				if err := app.Publish(context.Background(), Add{ID: "i-3", N: n}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	eventually(t, 30*time.Second, "every event applied", func() bool {
		return state2(t, f.instance("counter", "i-3")).Count >= events
	})
	in := f.instance("counter", "i-3")
	if s := state2(t, in); s.Count != events || in.Version != events+1 {
		t.Fatalf("count %d, version %d; want %d and %d", s.Count, in.Version, events, events+1)
	}
	if n := f.count(f.tables.outbox, ""); n != events {
		t.Fatalf("outbox holds %d messages, want %d", n, events)
	}
	t.Logf("%d events with %d handler runs", events, calls.Load())
}
