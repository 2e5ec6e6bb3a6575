package storetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/scheduler"
	"github.com/hexeract/hexeract/store"
)

// RunScheduler runs the scheduler's conformance tests on the driver of h:
// never early; 10k due messages over 3 schedulers (3 drivers on one URL,
// standing for 3 processes) each handed exactly once; a cron job fired
// once per tick across 3 schedulers; the cron lease taken over within its
// TTL when its holder dies; a rolled-back transaction schedules nothing;
// cancel and reschedule; a connection killed (or, for an embedded
// database, a process SIGKILLed) in the middle of a hand-off loses and
// doubles nothing; a Publisher sink; Run refuses an unmigrated table.
//
// The hand-offs are counted by a sink that writes a row per message into a
// table of the test in the hand-off transaction (through the driver's
// TxOf), so "handed once" is checked atomically with the hand-off.
func RunScheduler[TTx any](t *testing.T, h Harness[TTx]) {
	if os.Getenv(schedChildEnv) != "" {
		// A child process of ChildKilledMidHandOff: only that test runs.
		t.Run("ChildKilledMidHandOff", func(t *testing.T) { testSchedChildKilled(t, h) })
		return
	}
	t.Run("NeverEarly", func(t *testing.T) { t.Parallel(); testSchedNeverEarly(t, h) })
	t.Run("TenThousandOverThreeSchedulers", func(t *testing.T) { t.Parallel(); testSchedTenThousand(t, h) })
	t.Run("CronOncePerTickAcrossThree", func(t *testing.T) { t.Parallel(); testSchedCronOnce(t, h) })
	t.Run("LeaseHolderKilledTakeover", func(t *testing.T) { t.Parallel(); testSchedLeaseTakeover(t, h) })
	t.Run("RolledBackSchedulesNothing", func(t *testing.T) { t.Parallel(); testSchedRollback(t, h) })
	t.Run("CancelAndReschedule", func(t *testing.T) { t.Parallel(); testSchedCancelReschedule(t, h) })
	if h.KillConnections != nil {
		t.Run("ConnectionKilledMidBatch", func(t *testing.T) { t.Parallel(); testSchedConnKilled(t, h) })
	} else {
		t.Run("ChildKilledMidHandOff", func(t *testing.T) { t.Parallel(); testSchedChildKilled(t, h) })
	}
	t.Run("PublisherSink", func(t *testing.T) { t.Parallel(); testSchedPublisherSink(t, h) })
	t.Run("RefusedHandOffPostponed", func(t *testing.T) { t.Parallel(); testSchedRefused(t, h) })
	t.Run("WakesOnCommitInProcess", func(t *testing.T) { t.Parallel(); testSchedWake(t, h) })
	t.Run("RunRefusesUnmigratedTable", func(t *testing.T) { t.Parallel(); testSchedUnmigrated(t, h) })
}

// schedReminder is the test's typed message.
type schedReminder struct {
	N int `json:"n"`
}

func (schedReminder) MessageType() string { return "storetest.reminder" }

const handedTable = "storetest_handed"

// placeholder returns the i-th (from 1) placeholder of d's dialect.
func placeholder(d store.Dialect, i int) string {
	if d == store.Postgres {
		return "$" + strconv.Itoa(i)
	}
	return "?"
}

// schedEnv is one test's database: a URL, the drivers opened on it and
// the table the counting sink writes into.
type schedEnv[TTx any] struct {
	t   *testing.T
	h   Harness[TTx]
	url string
	d   store.Driver[TTx] // the first driver
}

func newSchedEnv[TTx any](t *testing.T, h Harness[TTx]) *schedEnv[TTx] {
	t.Helper()
	url := h.URL(t)
	e := &schedEnv[TTx]{t: t, h: h, url: url, d: h.Open(t, url)}
	e.exec(`CREATE TABLE ` + handedTable + ` (uuid VARCHAR(100) NOT NULL, due_us BIGINT NOT NULL, handed_us BIGINT NOT NULL, holder VARCHAR(100) NOT NULL)`)
	return e
}

func (e *schedEnv[TTx]) exec(sql string, args ...any) {
	e.t.Helper()
	if err := e.d.InTx(context.Background(), func(ctx context.Context, tx TTx) error { return e.h.Exec(ctx, tx, sql, args...) }); err != nil {
		e.t.Fatal(err)
	}
}

func (e *schedEnv[TTx]) queryInt(sql string, args ...any) int64 {
	e.t.Helper()
	var n int64
	var err error
	// A connection killed by a fault test may be handed out once more.
	for range 3 {
		err = e.d.InTx(context.Background(), func(ctx context.Context, tx TTx) (err error) {
			n, err = e.h.QueryInt(ctx, tx, sql, args...)
			return err
		})
		if err == nil {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatal(err)
	return n
}

// counts returns the rows of the handed table and their distinct uuids.
func (e *schedEnv[TTx]) counts() (total, distinct int64) {
	e.t.Helper()
	return e.queryInt(`SELECT COUNT(*) FROM ` + handedTable), e.queryInt(`SELECT COUNT(DISTINCT uuid) FROM ` + handedTable)
}

func (e *schedEnv[TTx]) waitCount(want int64, within time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		total, _ := e.counts()
		if total >= want {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d messages handed after %s, want %d", total, within, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// countingSink writes one row per handed message (its uuid, or the tick of
// a cron message, its due time and the time of the hand-off) into the
// handed table, in the hand-off transaction.
func countingSink[TTx any](h Harness[TTx], d store.Driver[TTx], holder string, after func(ctx context.Context, tx TTx) error) scheduler.Sink {
	return scheduler.TxSink(d, func(ctx context.Context, tx TTx, _ string, msgs ...*message.Message) error {
		var b strings.Builder
		b.WriteString(`INSERT INTO ` + handedTable + ` (uuid, due_us, handed_us, holder) VALUES `)
		args := make([]any, 0, 4*len(msgs))
		now := time.Now().UnixMicro()
		for i, m := range msgs {
			key, at := m.UUID, m.Metadata.Get(router.KeyDueAt)
			if tick := m.Metadata.Get(router.KeyCronTick); tick != "" {
				key, at = tick, tick
			}
			due, err := time.Parse(time.RFC3339Nano, at)
			if err != nil {
				return fmt.Errorf("message %s: due time %q: %w", m.UUID, at, err)
			}
			if i > 0 {
				b.WriteString(", ")
			}
			n := len(args)
			fmt.Fprintf(&b, "(%s, %s, %s, %s)", placeholder(d.Dialect(), n+1), placeholder(d.Dialect(), n+2),
				placeholder(d.Dialect(), n+3), placeholder(d.Dialect(), n+4))
			args = append(args, key, due.UnixMicro(), now, holder)
		}
		if err := h.Exec(ctx, tx, b.String(), args...); err != nil {
			return err
		}
		if after != nil {
			return after(ctx, tx)
		}
		return nil
	})
}

// newSched builds a migrated scheduler on d.
func newSched[TTx any](t *testing.T, d store.Driver[TTx], sink scheduler.Sink, opts ...scheduler.Option) *scheduler.Scheduler[TTx] {
	t.Helper()
	s, err := scheduler.New(d, sink, append([]scheduler.Option{scheduler.WithLogger(quiet()),
		scheduler.WithPollInterval(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// runSched runs s until the returned stop is called (or the test ends).
func runSched[TTx any](t *testing.T, s *scheduler.Scheduler[TTx]) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Error("Run did not return within 15 s of its context ending")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func reminders(from, n int) []router.Message {
	out := make([]router.Message, n)
	for i := range out {
		out[i] = schedReminder{N: from + i}
	}
	return out
}

func testSchedNeverEarly[TTx any](t *testing.T, h Harness[TTx]) {
	e := newSchedEnv(t, h)
	s := newSched(t, e.d, countingSink(h, e.d, "a", nil))
	runSched(t, s)
	ctx := context.Background()
	const n = 60
	start := time.Now()
	for i := range n {
		at := start.Add(time.Duration(100+10*i) * time.Millisecond)
		if err := e.d.InTx(ctx, func(ctx context.Context, tx TTx) error {
			_, err := s.Schedule(ctx, tx, at, schedReminder{N: i})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	e.waitCount(n, 15*time.Second)
	if early := e.queryInt(`SELECT COUNT(*) FROM ` + handedTable + ` WHERE handed_us < due_us`); early != 0 {
		t.Fatalf("%d of %d messages handed before their due time", early, n)
	}
	if total, distinct := e.counts(); total != n || distinct != n {
		t.Fatalf("%d hand-offs of %d messages, want %d of %d", total, distinct, n, n)
	}
}

func testSchedTenThousand[TTx any](t *testing.T, h Harness[TTx]) {
	e := newSchedEnv(t, h)
	ctx := context.Background()
	const n = 10000
	var scheds []*scheduler.Scheduler[TTx]
	for i := range 3 {
		d := e.d
		if i > 0 {
			d = h.Open(t, e.url) // another "process"
		}
		scheds = append(scheds, newSched(t, d, countingSink(h, d, strconv.Itoa(i), nil), scheduler.WithBatchSize(200)))
	}
	// Scheduled in the past, before any poller runs: all due at once.
	due := time.Now().Add(-time.Second)
	for from := 0; from < n; from += 1000 {
		if _, err := scheds[0].ScheduleWith(ctx, e.d.Executor(), due, reminders(from, 1000)...); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	for _, s := range scheds {
		runSched(t, s)
	}
	e.waitCount(n, 40*time.Second)
	took := time.Since(start)
	time.Sleep(300 * time.Millisecond) // a late duplicate would show
	total, distinct := e.counts()
	if total != n || distinct != n {
		t.Fatalf("%d hand-offs of %d distinct messages, want %d of %d (none twice, none missing)", total, distinct, n, n)
	}
	if left, err := scheds[0].Count(ctx); err != nil || left != 0 {
		t.Fatalf("%d messages left scheduled (%v), want 0", left, err)
	}
	shares := make([]int64, 3)
	for i := range shares {
		shares[i] = e.queryInt(`SELECT COUNT(*) FROM `+handedTable+` WHERE holder = `+placeholder(e.d.Dialect(), 1), strconv.Itoa(i))
	}
	t.Logf("%d messages handed off by 3 schedulers in %s (shares %v)", n, took.Round(time.Millisecond), shares)
}

func testSchedCronOnce[TTx any](t *testing.T, h Harness[TTx]) {
	e := newSchedEnv(t, h)
	for i := range 3 {
		d := e.d
		if i > 0 {
			d = h.Open(t, e.url)
		}
		s := newSched(t, d, countingSink(h, d, strconv.Itoa(i), nil), scheduler.WithLeaseTTL(time.Second),
			scheduler.WithInstanceID("replica-"+strconv.Itoa(i)))
		if err := s.Cron("* * * * * *", func(time.Time) []router.Message { return []router.Message{schedReminder{}} },
			scheduler.WithCronName("every-second")); err != nil {
			t.Fatal(err)
		}
		runSched(t, s)
	}
	time.Sleep(3500 * time.Millisecond)
	total, distinct := e.counts()
	if total != distinct {
		t.Fatalf("%d cron hand-offs for %d ticks: a tick fired more than once", total, distinct)
	}
	if total < 2 {
		t.Fatalf("%d ticks fired in 3.5 s by 3 schedulers, want at least 2", total)
	}
}

func testSchedLeaseTakeover[TTx any](t *testing.T, h Harness[TTx]) {
	e := newSchedEnv(t, h)
	const ttl = time.Second
	type replica struct {
		d    store.Driver[TTx]
		s    *scheduler.Scheduler[TTx]
		stop func()
	}
	var rs []replica
	for i := range 3 {
		d := h.Open(t, e.url)
		s := newSched(t, d, countingSink(h, d, "replica-"+strconv.Itoa(i), nil), scheduler.WithLeaseTTL(ttl),
			scheduler.WithInstanceID("replica-"+strconv.Itoa(i)))
		if err := s.Cron("* * * * * *", func(time.Time) []router.Message { return []router.Message{schedReminder{}} },
			scheduler.WithCronName("every-second")); err != nil {
			t.Fatal(err)
		}
		rs = append(rs, replica{d: d, s: s, stop: runSched(t, s)})
	}
	ctx := context.Background()
	var leader string
	deadline := time.Now().Add(5 * time.Second)
	for leader == "" {
		var err error
		if leader, err = rs[0].s.CronLeader(ctx); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("no cron leader after 5 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	idx, _ := strconv.Atoi(strings.TrimPrefix(leader, "replica-"))
	// The leader dies: its connections go first (so it cannot release the
	// lease), then its goroutines.
	_ = rs[idx].d.Close()
	killed := time.Now()
	rs[idx].stop()
	other := rs[(idx+1)%3].s
	var next string
	for {
		var err error
		if next, err = other.CronLeader(ctx); err != nil {
			t.Fatal(err)
		}
		if next != "" && next != leader {
			break
		}
		if time.Since(killed) > ttl+2*time.Second {
			t.Fatalf("lease still held by %q %s after its holder %s died (TTL %s)", next, time.Since(killed), leader, ttl)
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(killed)
	if took > ttl+time.Second {
		t.Fatalf("takeover took %s with a lease TTL of %s", took, ttl)
	}
	// The new leader fires.
	fired := func() int64 {
		return e.queryInt(`SELECT COUNT(*) FROM `+handedTable+` WHERE holder = `+placeholder(e.d.Dialect(), 1), next)
	}
	before := fired()
	deadline = time.Now().Add(3 * time.Second)
	for fired() <= before {
		if time.Now().After(deadline) {
			t.Fatalf("new leader %s fired no tick within 3 s", next)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if total, distinct := e.counts(); total != distinct {
		t.Fatalf("%d cron hand-offs for %d ticks across the takeover", total, distinct)
	}
	t.Logf("lease of %s taken over by %s %s after its death (TTL %s)", leader, next, took.Round(time.Millisecond), ttl)
}

func testSchedRollback[TTx any](t *testing.T, h Harness[TTx]) {
	e := newSchedEnv(t, h)
	s := newSched(t, e.d, countingSink(h, e.d, "a", nil))
	runSched(t, s)
	ctx := context.Background()
	var rolledBack, committed []string
	boom := errors.New("business failure")
	err := e.d.InTx(ctx, func(ctx context.Context, tx TTx) (err error) {
		rolledBack, err = s.Schedule(ctx, tx, time.Now(), schedReminder{N: 1})
		if err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if err := e.d.InTx(ctx, func(ctx context.Context, tx TTx) (err error) {
		committed, err = s.After(ctx, tx, 200*time.Millisecond, schedReminder{N: 2})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	e.waitCount(1, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	ph := placeholder(e.d.Dialect(), 1)
	if n := e.queryInt(`SELECT COUNT(*) FROM `+handedTable+` WHERE uuid = `+ph, rolledBack[0]); n != 0 {
		t.Fatal("a message scheduled in a rolled-back transaction was handed off")
	}
	if n := e.queryInt(`SELECT COUNT(*) FROM `+handedTable+` WHERE uuid = `+ph, committed[0]); n != 1 {
		t.Fatalf("the committed message was handed %d times, want 1", n)
	}
	if _, err := s.Get(ctx, rolledBack[0]); !errors.Is(err, scheduler.ErrNotFound) {
		t.Fatalf("Get of the rolled-back message: %v, want ErrNotFound", err)
	}
}

func testSchedCancelReschedule[TTx any](t *testing.T, h Harness[TTx]) {
	e := newSchedEnv(t, h)
	s := newSched(t, e.d, countingSink(h, e.d, "a", nil))
	ctx := context.Background()
	later := time.Now().Add(time.Hour)
	var ids []string
	if err := e.d.InTx(ctx, func(ctx context.Context, tx TTx) (err error) {
		ids, err = s.Schedule(ctx, tx, later, reminders(0, 3)...)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	cancelled, moved, kept := ids[0], ids[1], ids[2]
	if n, err := s.Count(ctx); err != nil || n != 3 {
		t.Fatalf("Count = %d, %v; want 3", n, err)
	}
	p, err := s.Get(ctx, kept)
	if err != nil || p.Type != "storetest.reminder" || !p.DueAt.Round(time.Millisecond).Equal(later.Round(time.Millisecond)) || p.Metadata == nil {
		t.Fatalf("Get = %+v, %v", p, err)
	}
	// Cancel in a transaction that rolls back: nothing changes.
	_ = e.d.InTx(ctx, func(ctx context.Context, tx TTx) error {
		if err := s.CancelTx(ctx, tx, cancelled); err != nil {
			t.Error(err)
		}
		return errors.New("roll back")
	})
	if _, err := s.Get(ctx, cancelled); err != nil {
		t.Fatalf("a cancel rolled back removed the message: %v", err)
	}
	if err := e.d.InTx(ctx, func(ctx context.Context, tx TTx) error { return s.CancelTx(ctx, tx, cancelled) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Cancel(ctx, cancelled); !errors.Is(err, scheduler.ErrNotFound) {
		t.Fatalf("second Cancel = %v, want ErrNotFound", err)
	}
	if err := e.d.InTx(ctx, func(ctx context.Context, tx TTx) error {
		return s.RescheduleTx(ctx, tx, moved, time.Now().Add(150*time.Millisecond))
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Reschedule(ctx, "no-such-id", time.Now()); !errors.Is(err, scheduler.ErrNotFound) {
		t.Fatalf("Reschedule of an unknown id = %v, want ErrNotFound", err)
	}
	list, err := s.List(ctx, "", 10)
	if err != nil || len(list) != 2 || list[0].ID != moved || list[1].ID != kept {
		t.Fatalf("List = %+v, %v; want the moved then the kept message", list, err)
	}
	runSched(t, s)
	e.waitCount(1, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	total, _ := e.counts()
	ph := placeholder(e.d.Dialect(), 1)
	if total != 1 || e.queryInt(`SELECT COUNT(*) FROM `+handedTable+` WHERE uuid = `+ph, moved) != 1 {
		t.Fatalf("%d hand-offs; want only the rescheduled message", total)
	}
	if n, err := s.Count(ctx); err != nil || n != 1 {
		t.Fatalf("Count after = %d, %v; want 1 (the kept message)", n, err)
	}
}

func testSchedConnKilled[TTx any](t *testing.T, h Harness[TTx]) {
	e := newSchedEnv(t, h)
	ctx := context.Background()
	var kills atomic.Int32
	const wantKills = 3
	sink := countingSink(h, e.d, "a", func(ctx context.Context, _ TTx) error {
		if kills.Load() >= wantKills {
			return nil
		}
		// The batch is written into the hand-off transaction: now every
		// connection of the database goes, this one included.
		kills.Add(1)
		h.KillConnections(t, e.url)
		return nil
	})
	s := newSched(t, e.d, sink, scheduler.WithBatchSize(100), scheduler.WithWorkers(1))
	const n = 1000
	ids, err := s.ScheduleWith(ctx, e.d.Executor(), time.Now(), reminders(0, n)...)
	if err != nil {
		t.Fatal(err)
	}
	runSched(t, s)
	e.waitCount(n, 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	total, distinct := e.counts()
	if total != n || distinct != n {
		t.Fatalf("%d hand-offs of %d distinct messages after %d connection kills mid-batch, want %d of %d", total, distinct, kills.Load(), n, n)
	}
	if kills.Load() < wantKills {
		t.Fatalf("only %d kills happened", kills.Load())
	}
	_ = ids
}

// schedChildEnv carries, to a child process of ChildKilledMidHandOff, the URL of
// the database and the file it creates once it is in the middle of a
// hand-off.
const schedChildEnv = "HEXERACT_STORETEST_SCHED_CHILD"

func testSchedChildKilled[TTx any](t *testing.T, h Harness[TTx]) {
	if v := os.Getenv(schedChildEnv); v != "" {
		url, ready, _ := strings.Cut(v, "\n")
		d := h.Open(t, url)
		var once sync.Once
		s := newSched(t, d, countingSink(h, d, "child", func(context.Context, TTx) error {
			once.Do(func() { _ = os.WriteFile(ready, nil, 0o600) })
			select {} // the batch is written, uncommitted: wait for SIGKILL
		}), scheduler.WithBatchSize(100))
		_ = s.Run(context.Background())
		return
	}
	e := newSchedEnv(t, h)
	ctx := context.Background()
	s := newSched(t, e.d, countingSink(h, e.d, "parent", nil), scheduler.WithBatchSize(100))
	const n = 500
	if _, err := s.ScheduleWith(ctx, e.d.Executor(), time.Now(), reminders(0, n)...); err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(t.TempDir(), "in-hand-off")
	var pattern []string
	for _, part := range strings.Split(t.Name(), "/") {
		pattern = append(pattern, "^"+regexp.QuoteMeta(part)+"$")
	}
	cmd := exec.Command(os.Args[0], "-test.run="+strings.Join(pattern, "/"), "-test.count=1")
	cmd.Env = append(os.Environ(), schedChildEnv+"="+e.url+"\n"+ready)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatal("the child process never reached a hand-off")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if total, _ := e.counts(); total != 0 {
		t.Fatalf("%d hand-offs of the SIGKILLed child were committed", total)
	}
	runSched(t, s)
	e.waitCount(n, 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	if total, distinct := e.counts(); total != n || distinct != n {
		t.Fatalf("%d hand-offs of %d distinct messages after a child was SIGKILLed mid-hand-off, want %d of %d", total, distinct, n, n)
	}
}

func testSchedPublisherSink[TTx any](t *testing.T, h Harness[TTx]) {
	d := h.OpenFresh(t)
	bus := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 64}, watermill.NopLogger{})
	t.Cleanup(func() { _ = bus.Close() })
	ctx := context.Background()
	msgs, err := bus.Subscribe(ctx, "storetest.reminder")
	if err != nil {
		t.Fatal(err)
	}
	s := newSched(t, d, scheduler.PublisherSink(bus))
	runSched(t, s)
	const n = 20
	ids, err := s.ScheduleWith(ctx, d.Executor(), time.Now().Add(100*time.Millisecond), reminders(0, n)...)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	timeout := time.After(15 * time.Second)
	for len(want) > 0 {
		select {
		case m := <-msgs:
			m.Ack()
			delete(want, m.UUID)
		case <-timeout:
			t.Fatalf("%d of %d messages never published", len(want), n)
		}
	}
}

func testSchedUnmigrated[TTx any](t *testing.T, h Harness[TTx]) {
	d := h.OpenFresh(t)
	s, err := scheduler.New(d, scheduler.PublisherSink(nil), scheduler.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = s.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "hexeract migrate up") || !strings.Contains(err.Error(), "Migrate") {
		t.Fatalf("Run on an unmigrated table returned %v; want an error naming `hexeract migrate up` and Scheduler.Migrate", err)
	}
}

// testSchedWake: with a poll interval of 10 s, a message scheduled in this
// process (in a transaction of the store) and due soon is handed off on
// time: the announcement wakes the poller, after the commit.
func testSchedWake[TTx any](t *testing.T, h Harness[TTx]) {
	e := newSchedEnv(t, h)
	s := newSched(t, e.d, countingSink(h, e.d, "a", nil), scheduler.WithPollInterval(10*time.Second))
	runSched(t, s)
	ctx := context.Background()
	time.Sleep(200 * time.Millisecond) // the poller is asleep on an empty table
	for i := range 3 {
		ex, err := e.d.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.ScheduleWith(ctx, ex, time.Now().Add(100*time.Millisecond), schedReminder{N: i}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // a transaction that takes its time
		if err := ex.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		e.waitCount(int64(i+1), 3*time.Second)
	}
	if late := e.queryInt(`SELECT COUNT(*) FROM ` + handedTable + ` WHERE handed_us > due_us + 1000000`); late != 0 {
		t.Fatalf("%d messages handed off more than 1 s late with a 10 s poll interval", late)
	}
}

// testSchedRefused: a sink that refuses the hand-off leaves the message
// scheduled, with its refusal counted and its due time pushed back (1 s
// after the first refusal, then doubling), never handed and never lost.
//
// One worker: on MySQL and SQLite the push-back commits in a transaction of
// its own after the hand-off rolled back, so with several workers another
// one can be offered the row in between (seen: 2-4 offers within the delay);
// PostgreSQL does not show it. Not fixed yet (see docs/storage.md).
func testSchedRefused[TTx any](t *testing.T, h Harness[TTx]) {
	d := h.OpenFresh(t)
	ctx := context.Background()
	var calls atomic.Int64
	s := newSched(t, d, scheduler.SinkFunc(func(context.Context, store.Executor, string, ...*message.Message) error {
		calls.Add(1)
		return errors.New("topic does not exist")
	}), scheduler.WithPollInterval(50*time.Millisecond), scheduler.WithWorkers(1))
	ids, err := s.ScheduleWith(ctx, d.Executor(), time.Now().Add(-time.Second), reminders(0, 1)...)
	if err != nil {
		t.Fatal(err)
	}
	runSched(t, s)
	var p scheduler.Pending
	waitFor(t, 10*time.Second, "the refusal recorded", func() bool {
		p, err = s.Get(ctx, ids[0])
		return err == nil && p.Refusals >= 1
	})
	if wait := time.Until(p.DueAt); wait < 500*time.Millisecond || wait > 3*time.Second {
		t.Fatalf("after %d refusal(s) the message is due in %v; want about 1 s", p.Refusals, wait)
	}
	time.Sleep(300 * time.Millisecond)
	if n := calls.Load(); n != 1 {
		t.Fatalf("the sink was offered the postponed message %d times within its delay, want 1", n)
	}
	if p, err = s.Get(ctx, ids[0]); err != nil || p.Refusals != 1 {
		t.Fatalf("the refused message: %+v, %v; want still scheduled with 1 refusal", p, err)
	}
}
