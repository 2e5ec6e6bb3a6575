package hexeract_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hexeract/hexeract/store/postgres"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/reqreply"
	"github.com/hexeract/hexeract/saga"
	"github.com/hexeract/hexeract/scheduler"
)

type lcPing struct{ N int }

func (lcPing) MessageType() string { return "lifecycle.ping" }

type lcPong struct{ N int }

func (lcPong) MessageType() string { return "lifecycle.pong" }

type lcOrder struct{ ID string }

func (lcOrder) MessageType() string { return "lifecycle.order" }

type lcExpired struct{ ID string }

func (lcExpired) MessageType() string { return "lifecycle.expired" }

type lcState struct{ ID string }

// lcComponent is a third-party-style Component: a goroutine started by
// Run and ended by Close.
type lcComponent struct {
	stop, done chan struct{}
	started    atomic.Bool
}

func (c *lcComponent) Start(context.Context) error {
	c.started.Store(true)
	go func() { defer close(c.done); <-c.stop }()
	return nil
}

func (c *lcComponent) Close() error {
	if c.started.Load() {
		close(c.stop)
		<-c.done
	}
	return nil
}

// lifecycleApp builds, runs and closes one App with every component that
// runs in memory attached: a typed handler, a saga on the in-memory store
// with a timeout pending when the App closes, a request/reply responder and
// client (one round trip), a worker and a third-party Component.
func lifecycleApp(t testing.TB, shared *gochannel.GoChannel, workers ...hexeract.Worker) {
	t.Helper()
	opts := []hexeract.Option{hexeract.WithLogger(quietLogger())}
	if shared != nil {
		opts = append(opts, hexeract.WithPubSub(shared, shared))
	}
	for _, w := range workers {
		opts = append(opts, hexeract.WithWorker(w))
	}
	opts = append(opts, hexeract.WithWorker(hexeract.WorkerFunc(func(ctx context.Context) error { <-ctx.Done(); return nil })))
	app, err := hexeract.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	handled := make(chan struct{}, 1)
	if err := hexeract.HandleFunc(app, func(context.Context, lcPong) error { handled <- struct{}{}; return nil }); err != nil {
		t.Fatal(err)
	}
	def := saga.Define[lcState]("lifecycle")
	started := make(chan struct{}, 1)
	saga.StartedBy(def, func(e lcOrder) string { return e.ID }, func(c *saga.Context[lcState], s *lcState, e lcOrder) error {
		s.ID = e.ID
		c.Timeout(time.Hour, lcExpired(e)) // still pending at Close
		started <- struct{}{}
		return nil
	})
	saga.Handles(def, func(e lcExpired) string { return e.ID }, func(c *saga.Context[lcState], s *lcState, e lcExpired) error {
		c.Complete()
		return nil
	})
	if err := saga.Register(app, def, saga.NewMemoryStore()); err != nil {
		t.Fatal(err)
	}
	if err := reqreply.Handle(app, func(_ context.Context, p lcPing) (lcPong, error) { return lcPong(p), nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := reqreply.NewClient(app); err != nil {
		t.Fatal(err)
	}
	comp := &lcComponent{stop: make(chan struct{}), done: make(chan struct{})}
	if err := app.Attach(comp); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	select {
	case <-app.Running():
	case err := <-done:
		t.Fatalf("Run returned early: %v", err)
	}
	pong, err := reqreply.Request[lcPing, lcPong](ctx, app, lcPing{N: 7}, reqreply.Timeout(10*time.Second))
	if err != nil || pong.N != 7 {
		t.Fatalf("request: %+v, %v", pong, err)
	}
	if err := app.Publish(ctx, lcOrder{ID: "o"}, lcPong{N: 1}); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []chan struct{}{handled, started} {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("a handler did not run")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := app.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if st := reqreply.StatsFor(app); st.Requests != 1 || st.Replies != 1 || st.Handled != 1 {
		t.Fatalf("request/reply counters read from the App: %+v", st)
	}
}

// 1,000 Apps with every component that runs in memory attached leave no
// goroutine and no heap behind once closed: nothing outside an App (no
// package-level registry) holds on to it or to what was attached to it.
func TestThousandAppsLeaveNothingBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 1,000 Apps; -short skips it")
	}
	testenv.CheckNothingLeft(t, 1000, 2<<20, func(t testing.TB) { lifecycleApp(t, nil) })
}

// The same on one transport shared by all the Apps and left open (an App
// does not close what it was given): what an App started on it, such as
// its request/reply client's reply subscription, ends with the App.
func TestThousandAppsOnASharedTransportLeaveNothingBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 1,000 Apps; -short skips it")
	}
	shared := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	t.Cleanup(func() { _ = shared.Close() })
	testenv.CheckNothingLeft(t, 1000, 2<<20, func(t testing.TB) { lifecycleApp(t, shared) })
}

// The same with the PostgreSQL components as the Apps' workers: an outbox
// relay built from the App's Outbox and a scheduler delivering into it (100
// Apps, each relay and scheduler opening and closing its own connections).
func TestAppsWithOutboxAndSchedulerLeaveNothingBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 100 Apps on PostgreSQL; -short skips it")
	}
	pool := testenv.Postgres(t)
	suffix := testenv.Suffix()
	obTable, schedTable := "lc_outbox_"+suffix, "lc_sched_"+suffix
	ob, err := outbox.New(postgres.New(pool), outbox.WithTable(obTable))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := ob.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	sched, err := scheduler.New(postgres.New(pool), ob, scheduler.WithTable(schedTable), scheduler.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if err := sched.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ob.Close()
		for _, q := range []string{
			fmt.Sprintf(`DROP TABLE IF EXISTS %[1]s, %[1]s_dead, %[1]s_delivered, %[2]s, %[2]s_ticks, %[2]s_leases`, obTable, schedTable),
			`DELETE FROM hexeract_schema_migrations WHERE component = ANY($1)`,
		} {
			var args []any
			if q[0] == 'D' && q[1] == 'E' {
				args = []any{[]string{"outbox:" + obTable, "scheduler:" + schedTable}}
			}
			_, _ = pool.Exec(ctx, q, args...)
		}
	})
	testenv.CheckNothingLeft(t, 100, 2<<20, func(t testing.TB) {
		// Each App's relay and scheduler are built for it, as a service does.
		relay, err := ob.NewRelay(nopPublisher{}, outbox.WithWorkers(1), outbox.WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		s, err := scheduler.New(postgres.New(pool), ob, scheduler.WithTable(schedTable), scheduler.WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		lifecycleApp(t, nil, relay, s)
	})
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// nopPublisher takes every message the relay hands it.
type nopPublisher struct{}

func (nopPublisher) Publish(string, ...*message.Message) error { return nil }
func (nopPublisher) Close() error                              { return nil }
