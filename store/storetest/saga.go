package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters/gochannel"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/saga"
	"github.com/hexeract/hexeract/store"
)

// RunSaga runs the saga store's conformance tests: the saga runtime on
// saga.NewSQLStore over the driver, with an outbox and a scheduler that
// write rows of a test table inside the transition's transaction (through
// the driver's TxOf), so that what a transition sends and schedules is
// counted in the database, atomically with the state.
func RunSaga[TTx any](t *testing.T, h Harness[TTx]) {
	if url := os.Getenv(sagaChildEnv); url != "" {
		runSagaChild(t, h, url)
		return
	}
	t.Run("OptimisticConcurrency", func(t *testing.T) { t.Parallel(); testSagaConcurrency(t, h, false) })
	t.Run("StartRace", func(t *testing.T) { t.Parallel(); testSagaStartRace(t, h) })
	t.Run("RolledBackTransitionSendsNothing", func(t *testing.T) { t.Parallel(); testSagaRollback(t, h) })
	t.Run("CompleteDeleteAndPurge", func(t *testing.T) { t.Parallel(); testSagaFinish(t, h) })
	t.Run("History", func(t *testing.T) { t.Parallel(); testSagaHistory(t, h) })
	t.Run("InboxTransactionNesting", func(t *testing.T) { t.Parallel(); testSagaNest(t, h) })
	if h.KillConnections != nil {
		t.Run("KilledConnections", func(t *testing.T) { t.Parallel(); testSagaConcurrency(t, h, true) })
	} else {
		// An embedded database has no server connections to kill: kill
		// the process that runs transitions instead.
		t.Run("ProcessKilledMidTransition", func(t *testing.T) { testSagaChildKilled(t, h) })
	}
}

// sagaChildEnv carries, to the child process of ProcessKilledMidTransition,
// the URL of the database.
const sagaChildEnv = "HEXERACT_STORETEST_SAGA_CHILD"

// testSagaChildKilled: a child process runs transitions of one instance
// (each increments the state and inserts one send row in the same unit of
// work) until it is SIGKILLed; afterwards the state, the version and the
// sends agree: no transition is half-applied, none committed is lost, and
// the database is intact and writable.
func testSagaChildKilled[TTx any](t *testing.T, h Harness[TTx]) {
	e := newSagaEnv(t, h)
	ctx := context.Background()
	st := e.store(e.d)
	parts := strings.Split(t.Name(), "/")
	for i := range parts {
		parts[i] = "^" + parts[i] + "$"
	}
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run="+strings.Join(parts, "/"), "-test.count=1")
		cmd.Env = append(os.Environ(), sagaChildEnv+"="+e.url)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		start := e.count("SELECT COUNT(*) FROM storetest_saga_sent")
		waitFor(t, 30*time.Second, "the child to commit transitions", func() bool {
			return e.count("SELECT COUNT(*) FROM storetest_saga_sent") > start+50
		})
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		in, err := st.Get(ctx, "storetest_kill", "k-1")
		if err != nil {
			t.Fatalf("round %d: %v\nchild output:\n%s", round, err, out.String())
		}
		var state struct{ N int64 }
		if err := json.Unmarshal(in.State, &state); err != nil {
			t.Fatal(err)
		}
		sent := e.count("SELECT COUNT(*) FROM storetest_saga_sent")
		if state.N != sent || in.Version != sent {
			t.Fatalf("round %d, after SIGKILL: state %d, version %d, %d sends committed; want all equal", round, state.N, in.Version, sent)
		}
		t.Logf("round %d: %d transitions committed before SIGKILL, state, version and sends agree", round, sent)
	}
}

// runSagaChild is the child of testSagaChildKilled: it applies
// transitions until it is killed.
func runSagaChild[TTx any](t *testing.T, h Harness[TTx], url string) {
	d := h.Open(t, url)
	st, err := saga.NewSQLStore(d, saga.WithTable(sagaTable))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	insert := sqlFor(d, "INSERT INTO storetest_saga_sent (id, topic) VALUES (?, ?)")
	for {
		tx, err := st.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		in, err := tx.Load(ctx, "storetest_kill", "k-1")
		var state struct{ N int64 }
		switch {
		case errors.Is(err, saga.ErrNotFound):
			in = &saga.Instance{Saga: "storetest_kill", Key: "k-1", Status: saga.Running}
		case err != nil:
			t.Fatal(err)
		default:
			if err := json.Unmarshal(in.State, &state); err != nil {
				t.Fatal(err)
			}
		}
		state.N++
		in.State, _ = json.Marshal(state)
		if in.Version == 0 {
			err = tx.Insert(ctx, in)
		} else {
			err = tx.Update(ctx, in)
		}
		if err != nil {
			t.Fatal(err)
		}
		dtx, ok := d.TxOf(tx.Executor())
		if !ok {
			t.Fatal("the unit of work has no driver transaction")
		}
		if err := h.Exec(ctx, dtx, insert, fmt.Sprint("send-", state.N), "t"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// sagaEnv is one test's saga setup on a fresh namespace: the URL, one
// driver per simulated process and the sends and scheduled tables.
type sagaEnv[TTx any] struct {
	t   *testing.T
	h   Harness[TTx]
	url string
	d   store.Driver[TTx] // the first process's driver
}

const sagaTable = "storetest_sagas"

func newSagaEnv[TTx any](t *testing.T, h Harness[TTx]) *sagaEnv[TTx] {
	t.Helper()
	e := &sagaEnv[TTx]{t: t, h: h, url: h.URL(t)}
	e.d = h.Open(t, e.url)
	ctx := context.Background()
	st := e.store(e.d)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Migrate(ctx, "storetest_saga", []store.Migration{
		{Version: 1, Name: "sends", SQL: "CREATE TABLE storetest_saga_sent (id VARCHAR(64) PRIMARY KEY, topic VARCHAR(255) NOT NULL)"},
		{Version: 2, Name: "scheduled", SQL: "CREATE TABLE storetest_saga_sched (id VARCHAR(64) PRIMARY KEY, topic VARCHAR(255) NOT NULL)"},
	}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *sagaEnv[TTx]) store(d store.Driver[TTx]) *saga.SQLStore {
	e.t.Helper()
	st, err := saga.NewSQLStore(d, saga.WithTable(sagaTable))
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// sql puts PostgreSQL's $n placeholders in place of ? for that driver.
func sqlFor(d store.Store, q string) string {
	if d.Dialect() != store.Postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// count runs a COUNT query of the test's own.
func (e *sagaEnv[TTx]) count(q string, args ...any) int64 {
	e.t.Helper()
	var n int64
	var err error
	for range 50 { // a killed connection fails one query
		if err = e.d.InTx(context.Background(), func(ctx context.Context, tx TTx) (err error) {
			n, err = e.h.QueryInt(ctx, tx, sqlFor(e.d, q), args...)
			return err
		}); err == nil {
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatal(err)
	return 0
}

// txOutbox is a saga.Outbox that writes one row per message into
// storetest_saga_sent in the transition's transaction.
type txOutbox[TTx any] struct {
	d       store.Driver[TTx]
	h       Harness[TTx]
	signals atomic.Int64
}

func (o *txOutbox[TTx]) PublishMessagesWith(ctx context.Context, ex store.Executor, topic string, msgs ...*message.Message) error {
	tx, ok := o.d.TxOf(ex)
	if !ok {
		return errors.New("storetest: the saga wrote its messages outside a transaction of the driver")
	}
	for _, m := range msgs {
		if err := o.h.Exec(ctx, tx, sqlFor(o.d, "INSERT INTO storetest_saga_sent (id, topic) VALUES (?, ?)"), m.UUID, topic); err != nil {
			return err
		}
	}
	return nil
}

func (o *txOutbox[TTx]) Signal() { o.signals.Add(1) }

// txScheduler is a saga.Scheduler that writes one row per timeout into
// storetest_saga_sched in the transition's transaction.
type txScheduler[TTx any] struct {
	d store.Driver[TTx]
	h Harness[TTx]
}

func (s *txScheduler[TTx]) ScheduleMessagesWith(ctx context.Context, ex store.Executor, _ time.Time, topic string, msgs ...*message.Message) ([]string, error) {
	tx, ok := s.d.TxOf(ex)
	if !ok {
		return nil, errors.New("storetest: the saga scheduled outside a transaction of the driver")
	}
	ids := make([]string, len(msgs))
	for i := range msgs {
		ids[i] = router.NewID()
		if err := s.h.Exec(ctx, tx, sqlFor(s.d, "INSERT INTO storetest_saga_sched (id, topic) VALUES (?, ?)"), ids[i], topic); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

func (s *txScheduler[TTx]) CancelWith(ctx context.Context, ex store.Executor, id string) error {
	tx, ok := s.d.TxOf(ex)
	if !ok {
		return errors.New("storetest: the saga cancelled outside a transaction of the driver")
	}
	return s.h.Exec(ctx, tx, sqlFor(s.d, "DELETE FROM storetest_saga_sched WHERE id = ?"), id)
}

// sagaApp returns an App on an in-memory transport of its own with the
// saga def on the store over d, patient retries (a killed connection
// fails attempts until the pool has replaced it) and no dead letters
// (a message whose retries run out is redelivered).
func (e *sagaEnv[TTx]) sagaApp(d store.Driver[TTx], def func(*saga.Definition[sagaCounter]), opts ...saga.Option) (*hexeract.App, *txOutbox[TTx]) {
	e.t.Helper()
	ps := gochannel.New(gochannel.Config{Buffer: 1024}, nil)
	e.t.Cleanup(func() { _ = ps.Close() })
	app, err := hexeract.New(hexeract.WithPubSub(ps, ps), hexeract.WithLogger(quiet()),
		hexeract.WithDefaultMiddleware(func(c *middleware.DefaultConfig) {
			c.Publisher = nil
			c.Retry.MaxAttempts = 100
			c.Retry.InitialInterval = 5 * time.Millisecond
			c.Retry.MaxInterval = 50 * time.Millisecond
		}))
	if err != nil {
		e.t.Fatal(err)
	}
	ob := &txOutbox[TTx]{d: d, h: e.h}
	sd := saga.Define[sagaCounter]("counter")
	def(sd)
	opts = append([]saga.Option{saga.WithOutbox(ob), saga.WithScheduler(&txScheduler[TTx]{d: d, h: e.h}), saga.WithLogger(quiet())}, opts...)
	if err := saga.Register(app, sd, e.store(d), opts...); err != nil {
		e.t.Fatal(err)
	}
	return app, ob
}

// The counter saga of these tests.
type (
	sagaCounter struct {
		Starts int
		Count  int
		Seen   []int
	}
	sagaStarted struct{ ID string }
	sagaAdd     struct {
		ID   string
		N    int
		Done bool // complete the instance
		Fail bool // return an error after sending and scheduling
	}
	sagaAdded   struct{ ID string }
	sagaTimeout struct{ ID string }
)

func (sagaStarted) MessageType() string { return "storetest.saga.started" }
func (sagaAdd) MessageType() string     { return "storetest.saga.add" }
func (sagaAdded) MessageType() string   { return "storetest.saga.added" }
func (sagaTimeout) MessageType() string { return "storetest.saga.timeout" }

// counterDef: a start counts starts; each Add adds its number once (a
// redelivered Add changes nothing), sends one message and (re)schedules a
// timeout.
func counterDef(calls *atomic.Int64) func(*saga.Definition[sagaCounter]) {
	return func(def *saga.Definition[sagaCounter]) {
		saga.StartedBy(def, func(e sagaStarted) string { return e.ID },
			func(c *saga.Context[sagaCounter], s *sagaCounter, _ sagaStarted) error {
				s.Starts++
				return nil
			})
		saga.Handles(def, func(e sagaAdd) string { return e.ID },
			func(c *saga.Context[sagaCounter], s *sagaCounter, e sagaAdd) error {
				if calls != nil {
					calls.Add(1)
				}
				// Widen the window between load and save, so that
				// concurrent consumers collide.
				time.Sleep(200 * time.Microsecond)
				if slices.Contains(s.Seen, e.N) {
					return nil
				}
				s.Count++
				s.Seen = append(s.Seen, e.N)
				c.Send(sagaAdded{ID: e.ID})
				c.Timeout(time.Hour, sagaTimeout{ID: e.ID})
				if e.Fail {
					return errors.New("storetest: the handler fails after sending")
				}
				if e.Done {
					c.Complete()
				}
				return nil
			})
		saga.OnTimeout(def, func(*saga.Context[sagaCounter], *sagaCounter, sagaTimeout) error { return nil })
	}
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func getCounter(t *testing.T, st *saga.SQLStore, key string) (*saga.Instance, sagaCounter) {
	t.Helper()
	var in *saga.Instance
	var err error
	for range 50 { // a killed connection fails one read
		if in, err = st.Get(context.Background(), "counter", key); err == nil || errors.Is(err, saga.ErrNotFound) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if errors.Is(err, saga.ErrNotFound) {
		return nil, sagaCounter{}
	}
	if err != nil {
		t.Fatal(err)
	}
	var s sagaCounter
	if err := json.Unmarshal(in.State, &s); err != nil {
		t.Fatal(err)
	}
	return in, s
}

// testSagaConcurrency: 100 events on one instance, handled by 4 consumers
// (each its own driver on the database, as 4 processes) at the same time:
// every event applied once (version 101), one send per event, none from
// the transitions that lost a race. With kill, the server connections are
// killed twice during the run: no transition is lost and none doubled.
func testSagaConcurrency[TTx any](t *testing.T, h Harness[TTx], kill bool) {
	e := newSagaEnv(t, h)
	const consumers, events = 4, 100
	var calls atomic.Int64
	apps := make([]*hexeract.App, consumers)
	for i := range apps {
		apps[i], _ = e.sagaApp(h.Open(t, e.url), counterDef(&calls), saga.WithConflictRetries(50))
		testenv.StartApp(t, apps[i])
	}
	st := e.store(e.d)
	ctx := context.Background()
	if err := apps[0].Publish(ctx, sagaStarted{ID: "c-1"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the instance started", func() bool { in, _ := getCounter(t, st, "c-1"); return in != nil })
	var wg sync.WaitGroup
	for i, app := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := i; n < events; n += consumers {
				if err := app.Publish(ctx, sagaAdd{ID: "c-1", N: n}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	killed := 0
	if kill {
		for _, at := range []int{events / 3, 2 * events / 3} {
			waitFor(t, 60*time.Second, fmt.Sprintf("%d events applied", at), func() bool { _, s := getCounter(t, st, "c-1"); return s.Count >= at })
			killed += h.KillConnections(t, e.url)
		}
	}
	wg.Wait()
	waitFor(t, 120*time.Second, "all events applied", func() bool { _, s := getCounter(t, st, "c-1"); return s.Count >= events })
	time.Sleep(200 * time.Millisecond) // let a doubled transition show
	in, s := getCounter(t, st, "c-1")
	seen := slices.Clone(s.Seen)
	slices.Sort(seen)
	if s.Count != events || len(seen) != events || len(slices.Compact(seen)) != events || seen[0] != 0 || seen[events-1] != events-1 {
		t.Fatalf("after %d concurrent events: count %d, seen %v", events, s.Count, s.Seen)
	}
	if sent := e.count("SELECT COUNT(*) FROM storetest_saga_sent"); sent != events {
		t.Fatalf("%d sends committed for %d applied events; want exactly one each", sent, events)
	}
	// Each transition cancels the previous timeout and schedules one.
	if sched := e.count("SELECT COUNT(*) FROM storetest_saga_sched"); sched != 1 {
		t.Fatalf("%d scheduled timeouts, want 1 (each transition replaces the previous one)", sched)
	}
	if kill {
		// A commit whose acknowledgement was lost is applied, and its
		// redelivery is a transition that changes nothing.
		if in.Version < events+1 {
			t.Fatalf("version %d, want at least %d", in.Version, events+1)
		}
		t.Logf("killed %d connections; %d handler runs for %d events, version %d", killed, calls.Load(), events, in.Version)
		if killed == 0 {
			t.Fatal("no connection was killed: the test did not exercise the fault")
		}
		return
	}
	if in.Version != events+1 {
		t.Fatalf("version = %d, want %d", in.Version, events+1)
	}
	if kept, dropped := len(in.Meta.History), in.Meta.HistoryDropped; kept != saga.MaxHistory || kept+dropped != events+1 {
		t.Fatalf("history: %d entries kept and %d dropped; want %d kept of %d", kept, dropped, saga.MaxHistory, events+1)
	}
	t.Logf("%d events applied with %d handler runs (%d lost a race and ran again)", events, calls.Load(), calls.Load()-events)
	if calls.Load() <= events && e.d.Dialect() != store.SQLite {
		// SQLite takes the write lock at BEGIN: its transitions never race.
		t.Fatalf("no transition lost a race (%d handler runs): the test did not exercise concurrency", calls.Load())
	}
}

// testSagaStartRace: N concurrent inserts of one key, each in its own
// unit of work, end with one instance and N-1 conflicts; N concurrent start
// events through the runtime end with one instance on which all ran.
func testSagaStartRace[TTx any](t *testing.T, h Harness[TTx]) {
	e := newSagaEnv(t, h)
	ctx := context.Background()
	const n = 8
	stores := make([]*saga.SQLStore, n)
	for i := range stores {
		stores[i] = e.store(h.Open(t, e.url))
	}
	var wg sync.WaitGroup
	var won, lost atomic.Int64
	start := make(chan struct{})
	for _, st := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			tx, err := st.Begin(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			defer func() { _ = tx.Rollback(ctx) }()
			err = tx.Insert(ctx, &saga.Instance{Saga: "race", Key: "k", Status: saga.Running, State: []byte(`{}`)})
			if err == nil {
				err = tx.Commit(ctx)
			}
			switch {
			case err == nil:
				won.Add(1)
			case errors.Is(err, saga.ErrConflict):
				lost.Add(1)
			default:
				t.Errorf("a concurrent insert failed with %v, want nil or saga.ErrConflict", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if won.Load() != 1 || lost.Load() != n-1 {
		t.Fatalf("%d concurrent inserts of one key: %d committed, %d conflicts; want 1 and %d", n, won.Load(), lost.Load(), n-1)
	}
	if c := e.count("SELECT COUNT(*) FROM "+sagaTable+" WHERE saga = ?", "race"); c != 1 {
		t.Fatalf("%d rows for the raced key, want 1", c)
	}

	apps := make([]*hexeract.App, 4)
	for i := range apps {
		apps[i], _ = e.sagaApp(h.Open(t, e.url), counterDef(nil))
		testenv.StartApp(t, apps[i])
	}
	st := e.store(e.d)
	for round := range 3 {
		key := fmt.Sprint("race-", round)
		var wg sync.WaitGroup
		for _, app := range apps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := app.Publish(ctx, sagaStarted{ID: key}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		waitFor(t, 30*time.Second, key+" started 4 times", func() bool { _, s := getCounter(t, st, key); return s.Starts == 4 })
		if in, _ := getCounter(t, st, key); in.Version != 4 {
			t.Fatalf("%s: version %d after 4 starts, want 4", key, in.Version)
		}
	}
}

// testSagaRollback: a handler that sends and schedules, then fails, leaves
// no instance, no send and no timeout; a version conflict at the save
// rolls back what the transition wrote too.
func testSagaRollback[TTx any](t *testing.T, h Harness[TTx]) {
	e := newSagaEnv(t, h)
	ctx := context.Background()
	var calls atomic.Int64
	app, _ := e.sagaApp(e.d, func(def *saga.Definition[sagaCounter]) {
		saga.StartedBy(def, func(e sagaAdd) string { return e.ID },
			func(c *saga.Context[sagaCounter], s *sagaCounter, e sagaAdd) error {
				calls.Add(1)
				s.Count++
				c.Send(sagaAdded{ID: e.ID})
				c.Timeout(time.Hour, sagaTimeout{ID: e.ID})
				return hexeract.Permanent(errors.New("storetest: validation failed"))
			})
		saga.OnTimeout(def, func(*saga.Context[sagaCounter], *sagaCounter, sagaTimeout) error { return nil })
	})
	testenv.StartApp(t, app)
	if err := app.Publish(ctx, sagaAdd{ID: "r-1"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the handler ran", func() bool { return calls.Load() >= 1 })
	time.Sleep(200 * time.Millisecond)
	st := e.store(e.d)
	if in, _ := getCounter(t, st, "r-1"); in != nil {
		t.Fatal("a failed transition saved its instance")
	}
	if n := e.count("SELECT COUNT(*) FROM storetest_saga_sent") + e.count("SELECT COUNT(*) FROM storetest_saga_sched"); n != 0 {
		t.Fatalf("a failed transition left %d sends or timeouts", n)
	}

	// A conflict found by the save: another unit of work moves the version
	// between this one's load and save.
	seed, err := st.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := seed.Insert(ctx, &saga.Instance{Saga: "counter", Key: "v", Status: saga.Running, State: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if err := seed.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	tx, err := st.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	in, err := tx.Load(ctx, "counter", "v")
	if err != nil {
		t.Fatal(err)
	}
	ob := &txOutbox[TTx]{d: e.d, h: h}
	if err := ob.PublishMessagesWith(ctx, tx.Executor(), "topic", message.NewMessage(router.NewID(), nil)); err != nil {
		t.Fatal(err)
	}
	if e.d.Dialect() != store.SQLite { // SQLite's IMMEDIATE transaction holds the write lock: no one else can save now
		other := e.store(h.Open(t, e.url))
		otx, err := other.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		oin, err := otx.Load(ctx, "counter", "v")
		if err != nil {
			t.Fatal(err)
		}
		if err := otx.Update(ctx, oin); err != nil {
			t.Fatal(err)
		}
		if err := otx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	} else {
		in.Version = 7 // a stale version read
	}
	err = tx.Update(ctx, in)
	if err == nil {
		err = tx.Commit(ctx)
	}
	_ = tx.Rollback(ctx)
	if !errors.Is(err, saga.ErrConflict) {
		t.Fatalf("save of a stale version: %v, want saga.ErrConflict", err)
	}
	if n := e.count("SELECT COUNT(*) FROM storetest_saga_sent"); n != 0 {
		t.Fatalf("a transition that lost its race left %d sends", n)
	}
}

// testSagaFinish: an instance that completes without retention is deleted
// with its history; with retention it is kept as completed until Purge
// deletes it and its history.
func testSagaFinish[TTx any](t *testing.T, h Harness[TTx]) {
	e := newSagaEnv(t, h)
	ctx := context.Background()
	st := e.store(e.d)
	hist := func(key string) int64 {
		return e.count("SELECT COUNT(*) FROM "+sagaTable+"_history WHERE saga = ? AND "+keyCol(e.d)+" = ?", "counter", key)
	}
	for _, retention := range []time.Duration{0, time.Hour} {
		app, _ := e.sagaApp(e.d, counterDef(nil), saga.WithRetention(retention))
		testenv.StartApp(t, app)
		key := fmt.Sprint("f-", retention)
		must(t, app.Publish(ctx, sagaStarted{ID: key}))
		waitFor(t, 10*time.Second, "started", func() bool { in, _ := getCounter(t, st, key); return in != nil })
		must(t, app.Publish(ctx, sagaAdd{ID: key, N: 1}))
		waitFor(t, 10*time.Second, "one event", func() bool { _, s := getCounter(t, st, key); return s.Count == 1 })
		must(t, app.Publish(ctx, sagaAdd{ID: key, N: 2, Done: true}))
		if retention == 0 {
			waitFor(t, 10*time.Second, "the completed instance deleted", func() bool { in, _ := getCounter(t, st, key); return in == nil })
			if n := hist(key); n != 0 {
				t.Fatalf("%d history rows left by the deleted instance", n)
			}
			if n := e.count("SELECT COUNT(*) FROM storetest_saga_sched"); n != 0 {
				t.Fatalf("%d timeouts left by the completed instance, want them cancelled", n)
			}
			continue
		}
		waitFor(t, 10*time.Second, "completed", func() bool { in, _ := getCounter(t, st, key); return in != nil && in.Status == saga.Completed })
		in, _ := getCounter(t, st, key)
		if in.CompletedAt.IsZero() || len(in.Meta.History) != 3 || in.Meta.History[2].Note != "completed" {
			t.Fatalf("kept completed instance: completed at %v, history %+v", in.CompletedAt, in.Meta.History)
		}
		list, err := st.List(ctx, saga.Filter{Saga: "counter", Status: saga.Completed})
		if err != nil || len(list) != 1 || list[0].Key != key {
			t.Fatalf("List of completed instances = %v, %v", list, err)
		}
		if n, err := st.Purge(ctx, in.CompletedAt.Add(-time.Minute)); err != nil || n != 0 {
			t.Fatalf("Purge before the completion deleted %d (%v), want 0", n, err)
		}
		n, err := st.Purge(ctx, time.Now().Add(time.Minute))
		if err != nil || n != 1 {
			t.Fatalf("Purge deleted %d instances (%v), want 1", n, err)
		}
		if in, _ := getCounter(t, st, key); in != nil || hist(key) != 0 {
			t.Fatal("Purge left the instance or its history")
		}
	}
}

// keyCol is the key column in the dialect's quoting (key is reserved in
// MySQL).
func keyCol(d store.Store) string {
	if d.Dialect() == store.MySQL {
		return "`key`"
	}
	return `"key"`
}

// testSagaHistory: the store trims the history as store.SagaHistoryKeep
// says, Get returns the last saga.MaxHistory entries oldest first and
// counts the dropped ones, and List filters and orders.
func testSagaHistory[TTx any](t *testing.T, h Harness[TTx]) {
	e := newSagaEnv(t, h)
	ctx := context.Background()
	st := e.store(e.d)
	const saves = 2*saga.MaxHistory + 10
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var in *saga.Instance
	for i := range saves {
		tx, err := st.Begin(ctx)
		must(t, err)
		if i > 0 {
			in, err = tx.Load(ctx, "h", "k")
			must(t, err)
		} else {
			in = &saga.Instance{Saga: "h", Key: "k", Status: saga.Running, State: []byte(`{}`)}
		}
		in.Meta.History = []saga.HistoryEntry{{At: base.Add(time.Duration(i) * time.Second), Kind: saga.HistoryEvent, Type: fmt.Sprint("e", i), Status: saga.Running, Note: fmt.Sprint("n", i)}}
		if i == 0 {
			must(t, tx.Insert(ctx, in))
		} else {
			must(t, tx.Update(ctx, in))
		}
		must(t, tx.Commit(ctx))
	}
	got, err := st.Get(ctx, "h", "k")
	must(t, err)
	if got.Version != saves || len(got.Meta.History) != saga.MaxHistory || got.Meta.HistoryDropped != saves-saga.MaxHistory {
		t.Fatalf("after %d saves: version %d, %d history entries, %d dropped", saves, got.Version, len(got.Meta.History), got.Meta.HistoryDropped)
	}
	first, last := got.Meta.History[0], got.Meta.History[saga.MaxHistory-1]
	if first.Type != fmt.Sprint("e", saves-saga.MaxHistory) || last.Type != fmt.Sprint("e", saves-1) || last.Note != fmt.Sprint("n", saves-1) ||
		!last.At.Equal(base.Add((saves-1)*time.Second)) || last.Kind != saga.HistoryEvent || last.Status != saga.Running {
		t.Fatalf("history kept: first %+v, last %+v", first, last)
	}
	// Trimmed at version 100: versions 51 to 110 are stored.
	if n := e.count("SELECT COUNT(*) FROM " + sagaTable + "_history"); n != saves-saga.MaxHistory {
		t.Fatalf("%d history rows stored, want %d", n, saves-saga.MaxHistory)
	}
	// List: filters, order (most recently updated first) and limit.
	for _, k := range []string{"a", "b", "c"} {
		tx, err := st.Begin(ctx)
		must(t, err)
		must(t, tx.Insert(ctx, &saga.Instance{Saga: "l", Key: k, Status: saga.Running, State: []byte(`{"k":"` + k + `"}`),
			Meta: saga.Meta{Failure: "f-" + k}}))
		must(t, tx.Commit(ctx))
		time.Sleep(2 * time.Millisecond)
	}
	list, err := st.List(ctx, saga.Filter{Saga: "l", Limit: 2})
	must(t, err)
	var state struct{ K string }
	if len(list) != 2 || list[0].Key != "c" || list[1].Key != "b" || json.Unmarshal(list[0].State, &state) != nil || state.K != "c" || list[0].Meta.Failure != "f-c" {
		t.Fatalf("List = %+v", list)
	}
	if list, err := st.List(ctx, saga.Filter{Status: saga.Failed}); err != nil || len(list) != 0 {
		t.Fatalf("List of failed = %v, %v", list, err)
	}
}

// testSagaNest: a unit of work nested in a transaction of the same
// database (the inbox middleware's) commits with it and rolls back alone.
func testSagaNest[TTx any](t *testing.T, h Harness[TTx]) {
	e := newSagaEnv(t, h)
	ctx := context.Background()
	outer, err := e.d.Begin(ctx)
	must(t, err)
	defer func() { _ = outer.Rollback(ctx) }()
	nest := func(key string, commit bool) {
		t.Helper()
		ex, ok, err := outer.SagaNest(ctx, e.d)
		if err != nil || !ok {
			t.Fatalf("SagaNest on a transaction of the same database: %v, %v", ok, err)
		}
		must(t, ex.SagaInsert(ctx, store.SagaTable{Table: sagaTable}, store.SagaRow{Saga: "n", Key: key, Status: "running", State: []byte(`{}`)}, nil))
		if commit {
			must(t, ex.Commit(ctx))
		} else {
			must(t, ex.Rollback(ctx))
		}
	}
	nest("kept", true)
	nest("undone", false)
	if _, ok, err := e.d.Executor().SagaNest(ctx, e.d); ok || err != nil {
		t.Fatalf("SagaNest on the pool: %v, %v; want not ok", ok, err)
	}
	must(t, outer.Commit(ctx))
	if n := e.count("SELECT COUNT(*) FROM "+sagaTable+" WHERE saga = ?", "n"); n != 1 {
		t.Fatalf("%d nested instances committed, want 1 (the released savepoint, not the rolled back one)", n)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
