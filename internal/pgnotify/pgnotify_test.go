package pgnotify_test

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hexeract/hexeract/internal/pgnotify"
	"github.com/hexeract/hexeract/internal/testenv"
)

// fixture is one listener on its own channel and application_name.
type fixture struct {
	pool     *pgxpool.Pool
	channel  string
	app      string
	logs     *testenv.Logs
	payloads chan string
	listens  atomic.Int32
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	suffix := testenv.Suffix()
	return &fixture{
		pool:     testenv.Postgres(t),
		channel:  "pgnotify_test_" + suffix,
		app:      "hexeract-pgnotify-test " + suffix,
		logs:     &testenv.Logs{},
		payloads: make(chan string, 16),
	}
}

// connConfig returns a connection configuration carrying f.app as
// application_name, so that a test terminates its own connection only.
func (f *fixture) connConfig(t *testing.T) *pgx.ConnConfig {
	t.Helper()
	cfg, err := pgx.ParseConfig(testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = f.app
	return cfg
}

func (f *fixture) listener(t *testing.T, connect pgnotify.Connect) *pgnotify.Listener {
	t.Helper()
	l, err := pgnotify.New(connect, []string{f.channel},
		func(n *pgconn.Notification) { f.payloads <- n.Payload },
		pgnotify.WithLogger(slog.New(slog.NewTextHandler(f.logs, nil))),
		pgnotify.WithBackoff(20*time.Millisecond, 200*time.Millisecond),
		pgnotify.WithOnListen(func() { f.listens.Add(1) }))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// run runs l until the returned stop is called; stop waits for Run to return.
func run(t *testing.T, l *pgnotify.Listener) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return within 5 s of the cancellation")
		}
	}
	t.Cleanup(stop)
	return stop
}

func (f *fixture) notify(t *testing.T, payload string) {
	t.Helper()
	if _, err := f.pool.Exec(context.Background(), `SELECT pg_notify($1, $2)`, f.channel, payload); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) expect(t *testing.T, payload string) {
	t.Helper()
	select {
	case got := <-f.payloads:
		if got != payload {
			t.Fatalf("notification payload %q, want %q", got, payload)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no notification %q within 5 s", payload)
	}
}

// kill terminates this test's LISTEN connection (and only it) and returns
// how many sessions it terminated.
func (f *fixture) kill(t *testing.T) int {
	t.Helper()
	var n int
	err := f.pool.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE query LIKE 'LISTEN%' AND query = $1 AND application_name = $2`,
		`LISTEN `+pgx.Identifier{f.channel}.Sanitize(), f.app).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (f *fixture) sessions(t *testing.T) int {
	t.Helper()
	var n int
	err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, f.app).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNotificationsWakeTheCallbackAcrossAConnectionKill(t *testing.T) {
	f := newFixture(t)
	run(t, f.listener(t, pgnotify.ConnectConfig(f.connConfig(t))))
	testenv.WaitFor(t, 5*time.Second, "the first LISTEN", func() bool { return f.listens.Load() == 1 })
	f.notify(t, "one")
	f.expect(t, "one")
	f.notify(t, "two")
	f.expect(t, "two")

	if n := f.kill(t); n != 1 {
		t.Fatalf("terminated %d LISTEN sessions, want 1", n)
	}
	testenv.WaitFor(t, 5*time.Second, "LISTEN again after the kill", func() bool { return f.listens.Load() == 2 })
	f.notify(t, "three")
	f.expect(t, "three")
	if n := f.logs.Count("LISTEN connection lost"); n != 1 {
		t.Errorf("%d \"connection lost\" log lines, want 1:\n%s", n, f.logs.String())
	}
	if n := f.logs.Count("LISTEN connection restored"); n != 1 {
		t.Errorf("%d \"connection restored\" log lines, want 1:\n%s", n, f.logs.String())
	}
	select {
	case p := <-f.payloads:
		t.Fatalf("unexpected extra notification %q", p)
	default:
	}
}

func TestPoolConnectionReconnectsAfterKill(t *testing.T) {
	f := newFixture(t)
	pcfg, err := pgxpool.ParseConfig(testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	pcfg.ConnConfig.RuntimeParams["application_name"] = f.app
	pcfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(context.Background(), pcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	stop := run(t, f.listener(t, pgnotify.ConnectPool(pool)))
	testenv.WaitFor(t, 5*time.Second, "the first LISTEN", func() bool { return f.listens.Load() == 1 })
	if n := f.kill(t); n != 1 {
		t.Fatalf("terminated %d LISTEN sessions, want 1", n)
	}
	testenv.WaitFor(t, 5*time.Second, "LISTEN again after the kill", func() bool { return f.listens.Load() == 2 })
	f.notify(t, "after")
	f.expect(t, "after")
	stop()
	// The hijacked connections left the pool: the pool holds none of them.
	if s := pool.Stat(); s.TotalConns() != 0 {
		t.Fatalf("pool holds %d connections after the listener stopped, want 0", s.TotalConns())
	}
}

func TestRunStopsWithItsContextLeavingNothing(t *testing.T) {
	f := newFixture(t)
	cfg := f.connConfig(t)
	if err := f.pool.Ping(context.Background()); err != nil { // the pool's own goroutines start now
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	l := f.listener(t, pgnotify.ConnectConfig(cfg))
	stop := run(t, l)
	testenv.WaitFor(t, 5*time.Second, "the LISTEN", func() bool { return f.listens.Load() == 1 })
	if n := f.sessions(t); n != 1 {
		t.Fatalf("%d sessions of the listener, want 1", n)
	}
	stop()
	testenv.WaitFor(t, 5*time.Second, "the listener's session to end", func() bool { return f.sessions(t) == 0 })
	testenv.WaitFor(t, 5*time.Second, "no goroutine left", func() bool { return runtime.NumGoroutine() <= before })

	// Cancelled while waiting to reconnect, too.
	down := &atomic.Int32{}
	l2, err := pgnotify.New(func(context.Context) (*pgx.Conn, error) {
		down.Add(1)
		return nil, errors.New("server down")
	}, []string{f.channel}, func(*pgconn.Notification) {},
		pgnotify.WithLogger(slog.New(slog.NewTextHandler(f.logs, nil))), pgnotify.WithBackoff(time.Hour, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	stop2 := run(t, l2)
	testenv.WaitFor(t, 5*time.Second, "a failed connection attempt", func() bool { return down.Load() == 1 })
	stop2()
	testenv.WaitFor(t, 5*time.Second, "no goroutine left", func() bool { return runtime.NumGoroutine() <= before })
}

func TestBackoffGrowsWhileTheServerIsDownAndRestarts(t *testing.T) {
	f := newFixture(t)
	cfg := f.connConfig(t)
	var mu sync.Mutex
	var attempts []time.Time
	fail := atomic.Int32{}
	fail.Store(4)
	connect := func(ctx context.Context) (*pgx.Conn, error) {
		mu.Lock()
		attempts = append(attempts, time.Now())
		mu.Unlock()
		if fail.Add(-1) >= 0 {
			return nil, errors.New("server down")
		}
		return pgx.ConnectConfig(ctx, cfg)
	}
	run(t, f.listener(t, connect))
	testenv.WaitFor(t, 10*time.Second, "LISTEN after four failed attempts", func() bool { return f.listens.Load() == 1 })
	f.notify(t, "up")
	f.expect(t, "up")
	mu.Lock()
	gaps := make([]time.Duration, 0, len(attempts)-1)
	for i := 1; i < len(attempts); i++ {
		gaps = append(gaps, attempts[i].Sub(attempts[i-1]))
	}
	mu.Unlock()
	// Backoff 20, 40, 80, 160 ms: each wait at least the configured one.
	for i, want := range []time.Duration{20, 40, 80, 160} {
		if gaps[i] < want*time.Millisecond {
			t.Errorf("wait %d was %v, want at least %v", i+1, gaps[i], want*time.Millisecond)
		}
	}
	if n := f.logs.Count("cannot LISTEN"); n != 4 {
		t.Errorf("%d \"cannot LISTEN\" log lines, want 4", n)
	}
	if n := f.logs.Count("LISTEN connection restored"); n != 1 {
		t.Errorf("%d \"restored\" log lines, want 1", n)
	}
	// After a good connection the backoff restarts at its minimum.
	start := time.Now()
	if n := f.kill(t); n != 1 {
		t.Fatalf("terminated %d LISTEN sessions, want 1", n)
	}
	testenv.WaitFor(t, 5*time.Second, "LISTEN again", func() bool { return f.listens.Load() == 2 })
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("reconnected after %v; the backoff should have restarted at 20 ms", d)
	}
}

func TestNewRejectsBadConfiguration(t *testing.T) {
	connect := pgnotify.ConnectConfig(&pgx.ConnConfig{})
	notify := func(*pgconn.Notification) {}
	for name, tc := range map[string]struct {
		connect  pgnotify.Connect
		channels []string
		notify   func(*pgconn.Notification)
		opts     []pgnotify.Option
		want     string
	}{
		"no connect":        {nil, []string{"c"}, notify, nil, "needs a Connect"},
		"no callback":       {connect, []string{"c"}, nil, nil, "needs a notify callback"},
		"no channel":        {connect, nil, notify, nil, "at least one channel"},
		"empty channel":     {connect, []string{""}, notify, nil, "1 to 63 bytes"},
		"long channel":      {connect, []string{strings.Repeat("x", 64)}, notify, nil, "1 to 63 bytes"},
		"backoff min > max": {connect, []string{"c"}, notify, []pgnotify.Option{pgnotify.WithBackoff(time.Second, time.Millisecond)}, "0 < min <= max"},
		"zero backoff":      {connect, []string{"c"}, notify, []pgnotify.Option{pgnotify.WithBackoff(0, time.Second)}, "0 < min <= max"},
		"nil logger":        {connect, []string{"c"}, notify, []pgnotify.Option{pgnotify.WithLogger(nil)}, "nil"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := pgnotify.New(tc.connect, tc.channels, tc.notify, tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
