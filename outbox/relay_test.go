package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/store/postgres"
)

func publishN(t testing.TB, pool *pgxpool.Pool, ob *outbox.Outbox[pgx.Tx], n, perTx int) []string {
	t.Helper()
	ctx := context.Background()
	var ids []string
	for done := 0; done < n; done += perTx {
		k := min(perTx, n-done)
		msgs := make([]router.Message, k)
		for i := range msgs {
			msgs[i] = UserRegistered{UserID: fmt.Sprint(done + i)}
		}
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			got, err := ob.Publish(ctx, tx, msgs...)
			ids = append(ids, got...)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func TestThreeRelaysDeliverEveryRowOnceWithoutOverlap(t *testing.T) {
	pool, ob, table := newOutbox(t)
	ids := publishN(t, pool, ob, 20000, 1000)
	rec := newRecorder()
	rec.hold = 200 * time.Microsecond // widen the window in which an overlap would show
	for range 3 {
		runRelay(t, pool, rec, outbox.WithTable(table), outbox.WithWorkers(2), outbox.WithBatchSize(100))
	}
	waitFor(t, 60*time.Second, "20000 deliveries", func() bool { return rec.distinct() == len(ids) })
	time.Sleep(100 * time.Millisecond)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.overlap) > 0 {
		t.Fatalf("%d rows were in flight in two relays at once, e.g. %s", len(rec.overlap), rec.overlap[0])
	}
	for _, id := range ids {
		if c := rec.count[id]; c != 1 {
			t.Fatalf("message %s delivered %d times", id, c)
		}
	}
	if len(rec.got) != len(ids) {
		t.Fatalf("%d deliveries for %d rows", len(rec.got), len(ids))
	}
	if st := pending(t, ob); st.Pending != 0 {
		t.Fatalf("rows left: %+v", st)
	}
}

// gate is a publisher that blocks every Publish until released, after
// signalling that a batch arrived.
type gate struct {
	*recorder
	arrived chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGate() *gate {
	g := &gate{recorder: newRecorder(), arrived: make(chan struct{}, 1), release: make(chan struct{})}
	return g
}

func (g *gate) Publish(topic string, msgs ...*message.Message) error {
	select {
	case g.arrived <- struct{}{}:
	default:
	}
	<-g.release
	return g.recorder.Publish(topic, msgs...)
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

func TestRelayConnectionCutMidBatchLosesNothing(t *testing.T) {
	pool, ob, table := newOutbox(t)
	ids := publishN(t, pool, ob, 2000, 500)
	g := newGate()
	t.Cleanup(g.open)
	runRelay(t, pool, g, outbox.WithTable(table), outbox.WithWorkers(1), outbox.WithBatchSize(100), outbox.WithPollInterval(50*time.Millisecond))
	select {
	case <-g.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("relay never published")
	}
	// The relay holds a claimed batch and waits for the broker: cut its connection.
	var killed int
	err := pool.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE application_name = $1 AND state = 'idle in transaction'`, "hexeract-relay "+table).Scan(&killed)
	if err != nil {
		t.Fatal(err)
	}
	if killed != 1 {
		t.Fatalf("terminated %d relay sessions in a transaction, want 1", killed)
	}
	g.open()
	waitFor(t, 30*time.Second, "all rows delivered after the cut", func() bool { return g.distinct() == len(ids) })
	waitFor(t, 10*time.Second, "outbox empty", func() bool { return pending(t, ob).Pending == 0 })
	g.mu.Lock()
	defer g.mu.Unlock()
	dups := 0
	for _, id := range ids {
		switch c := g.count[id]; {
		case c == 0:
			t.Fatalf("message %s lost", id)
		case c > 1:
			dups++
		}
	}
	// The batch published on the cut connection could not commit: it is
	// delivered again (at-least-once), and nothing else is.
	if dups == 0 || dups > 100 {
		t.Fatalf("%d messages delivered twice; want the cut batch (1..100)", dups)
	}
	t.Logf("%d of %d delivered twice (the batch in flight when the connection was cut)", dups, len(ids))
}

func TestRelayContextCancelledMidBatchLosesNothing(t *testing.T) {
	pool, ob, table := newOutbox(t)
	ids := publishN(t, pool, ob, 1000, 500)
	g := newGate()
	t.Cleanup(g.open)
	r, err := outbox.NewRelay(postgres.New(pool), g, outbox.WithTable(table), outbox.WithWorkers(2), outbox.WithBatchSize(100))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-g.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("relay never published")
	}
	cancel()
	time.Sleep(50 * time.Millisecond)
	g.open() // the broker acknowledges after the cancellation
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancellation")
	}
	first := g.distinct()
	st := pending(t, ob)
	if int(st.Pending)+first != len(ids) {
		t.Fatalf("after cancellation: %d delivered + %d pending != %d", first, st.Pending, len(ids))
	}
	// A new relay delivers the rest, and nothing twice.
	rec := g.recorder
	runRelay(t, pool, rec, outbox.WithTable(table))
	waitFor(t, 20*time.Second, "the rest", func() bool { return rec.distinct() == len(ids) })
	waitFor(t, 10*time.Second, "outbox empty", func() bool { return pending(t, ob).Pending == 0 })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, id := range ids {
		if rec.count[id] != 1 {
			t.Fatalf("message %s delivered %d times", id, rec.count[id])
		}
	}
}

func TestFailuresBackOffEndDeadAndReplay(t *testing.T) {
	pool, ob, table := newOutbox(t)
	ctx := context.Background()
	ids := publishN(t, pool, ob, 5, 5)
	poison := ids[2]
	rec := newRecorder()
	var attempts sync.Map
	rec.fail = func(topic string, msgs []*message.Message) error {
		for _, m := range msgs {
			if m.UUID == poison {
				n, _ := attempts.LoadOrStore(m.UUID, new(atomic.Int32))
				n.(*atomic.Int32).Add(1)
				return errors.New("broker says no")
			}
		}
		return nil
	}
	stop := runRelay(t, pool, rec, outbox.WithTable(table), outbox.WithMaxAttempts(3),
		outbox.WithBackoff(20*time.Millisecond, 40*time.Millisecond), outbox.WithPollInterval(10*time.Millisecond), outbox.WithBatchSize(1))
	waitFor(t, 10*time.Second, "dead row", func() bool { return pending(t, ob).Dead == 1 })
	stop()
	if rec.distinct() != 4 {
		t.Fatalf("delivered %d; the poison row must not block the 4 others", rec.distinct())
	}
	n, _ := attempts.Load(poison)
	if got := n.(*atomic.Int32).Load(); got != 3 {
		t.Fatalf("poison attempted %d times, want 3", got)
	}
	dead, err := ob.DeadLetters(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || dead[0].ID != poison || dead[0].Attempts != 3 || !strings.Contains(dead[0].LastError, "broker says no") || dead[0].Metadata[router.KeyType] != "users.registered" {
		t.Fatalf("dead rows = %+v", dead)
	}
	if st := pending(t, ob); st.Pending != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Replay with a healthy broker.
	rec.mu.Lock()
	rec.fail = nil
	rec.mu.Unlock()
	var progress int64
	replayed, err := ob.ReplayDead(ctx, nil, 0, func(done int64) { progress = done })
	if err != nil || replayed != 1 || progress != 1 {
		t.Fatalf("replay = %d, %v (progress %d)", replayed, err, progress)
	}
	runRelay(t, pool, rec, outbox.WithTable(table))
	waitFor(t, 10*time.Second, "replayed delivery", func() bool { return rec.distinct() == 5 })
	waitFor(t, 10*time.Second, "commit", func() bool { return pending(t, ob).Pending == 0 })
	if st := pending(t, ob); st.Dead != 0 || st.Pending != 0 {
		t.Fatalf("after replay %+v", st)
	}
}

func TestBackoffTimesComeFromTheDatabase(t *testing.T) {
	pool, ob, table := newOutbox(t)
	publishN(t, pool, ob, 1, 1)
	rec := newRecorder()
	rec.fail = func(string, []*message.Message) error { return errors.New("down") }
	stop := runRelay(t, pool, rec, outbox.WithTable(table), outbox.WithBackoff(time.Hour, 2*time.Hour), outbox.WithPollInterval(10*time.Millisecond))
	waitFor(t, 10*time.Second, "first failure", func() bool { return pending(t, ob).Retrying == 1 })
	stop()
	var attempts int
	var wait time.Duration
	var lastErr string
	err := pool.QueryRow(context.Background(), `SELECT attempts, next_attempt_at - now(), last_error FROM `+table).Scan(&attempts, &wait, &lastErr)
	if err != nil {
		t.Fatal(err)
	}
	if attempts != 1 || wait < 47*time.Minute || wait > time.Hour || lastErr != "down" {
		t.Fatalf("attempts %d, next attempt in %v, last error %q; want 1, 48..60 min, down", attempts, wait, lastErr)
	}
}

func TestPerKeyOrderWithThreeRelays(t *testing.T) {
	pool, ob, table := newOutbox(t)
	ctx := context.Background()
	const keys, perKey = 12, 150
	rec := newRecorder()
	var failures atomic.Int32
	rec.fail = func(string, []*message.Message) error {
		if rand.IntN(20) == 0 { // 5% transient broker failures
			failures.Add(1)
			return errors.New("transient")
		}
		return nil
	}
	for range 3 {
		runRelay(t, pool, rec, outbox.WithTable(table), outbox.WithWorkers(2), outbox.WithBatchSize(16),
			outbox.WithBackoff(time.Millisecond, 5*time.Millisecond), outbox.WithPollInterval(5*time.Millisecond), outbox.WithMaxAttempts(1000))
	}
	// Producers write concurrently; two producers share each key, so rows of a
	// key come from concurrent transactions (the key lock orders them).
	var next [keys]atomic.Int32
	var wg sync.WaitGroup
	for p := range 6 {
		wg.Go(func() {
			for range keys * perKey / 6 / 2 {
				k := (p + rand.IntN(2)*6) % keys
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					n := int(next[k].Add(1))
					_, err := ob.Publish(ctx, tx, AccountEvent{Account: fmt.Sprint("acct-", k), N: n}, UserRegistered{UserID: "unkeyed"})
					return err
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	total := keys*perKey/6/2*6*2 - 0
	waitFor(t, 60*time.Second, "all deliveries", func() bool { return rec.distinct() == total })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	last := map[string]int{}
	delivered := 0
	for _, m := range rec.got {
		if m.Metadata.Get(router.KeyType) != "accounts.event" {
			continue
		}
		var e AccountEvent
		if err := router.JSON.Unmarshal(router.JSON{}, m.Payload, &e); err != nil {
			t.Fatal(err)
		}
		if e.N <= last[e.Account] {
			t.Fatalf("key %s: event %d delivered after %d", e.Account, e.N, last[e.Account])
		}
		last[e.Account] = e.N
		delivered++
	}
	if len(rec.overlap) > 0 {
		t.Fatalf("overlapping deliveries: %v", rec.overlap[:1])
	}
	t.Logf("%d keyed events in order across 3 relays, %d injected broker failures", delivered, failures.Load())
	if failures.Load() == 0 {
		t.Fatal("no broker failure was injected; the test did not exercise retries")
	}
}

func TestPublisherPanicFailsTheBatchNotTheProcess(t *testing.T) {
	pool, ob, table := newOutbox(t)
	publishN(t, pool, ob, 3, 3)
	rec := newRecorder()
	var calls atomic.Int32
	rec.fail = func(string, []*message.Message) error {
		if calls.Add(1) == 1 {
			panic("broker client bug")
		}
		return nil
	}
	runRelay(t, pool, rec, outbox.WithTable(table), outbox.WithBackoff(10*time.Millisecond, 20*time.Millisecond), outbox.WithPollInterval(10*time.Millisecond))
	waitFor(t, 10*time.Second, "delivery after the panic", func() bool { return rec.distinct() == 3 })
	waitFor(t, 5*time.Second, "outbox empty", func() bool { return pending(t, ob).Pending == 0 })
}

// The backoff of a failed row counts from the failure, not from the start
// of the claiming transaction: a broker call that takes longer than the
// backoff (a publish timeout) must not make the retry due at once.
func TestBackoffCountsFromTheFailureNotTheClaim(t *testing.T) {
	pool, ob, table := newOutbox(t)
	publishN(t, pool, ob, 1, 1)
	const backoff, slow = 5 * time.Second, 2 * time.Second
	rec := newRecorder()
	failedAt := make(chan time.Time, 1)
	rec.fail = func(string, []*message.Message) error {
		time.Sleep(slow) // a broker that times out
		var now time.Time
		if err := pool.QueryRow(context.Background(), `SELECT clock_timestamp()`).Scan(&now); err == nil {
			select {
			case failedAt <- now:
			default:
			}
		}
		return errors.New("timeout")
	}
	stop := runRelay(t, pool, rec, outbox.WithTable(table), outbox.WithBackoff(backoff, backoff), outbox.WithPollInterval(10*time.Millisecond))
	waitFor(t, 10*time.Second, "first failure", func() bool { return pending(t, ob).Retrying == 1 })
	stop()
	var next time.Time
	if err := pool.QueryRow(context.Background(), `SELECT next_attempt_at FROM `+table).Scan(&next); err != nil {
		t.Fatal(err)
	}
	failed := <-failedAt
	// Jitter takes up to 20% off the backoff.
	if due := next.Sub(failed); due < backoff*8/10 {
		t.Fatalf("retry due %v after the failure, want at least %v", due, backoff*8/10)
	}
}

// ctxPublisher behaves like the AMQP, Redis and SQS publishers: it gives
// up when the message's context ends.
type ctxPublisher struct{ called chan struct{} }

func (p ctxPublisher) Publish(_ string, msgs ...*message.Message) error {
	select {
	case p.called <- struct{}{}:
	default:
	}
	<-msgs[0].Context().Done()
	return msgs[0].Context().Err()
}

func (ctxPublisher) Close() error { return nil }

// Stopping the relay while a publisher that honours the message context is
// in flight must not charge the rows a failed attempt (and with the last
// attempt, kill them): the batch is rolled back, untouched.
func TestRelayStopDuringPublishChargesNoAttempt(t *testing.T) {
	pool, ob, table := newOutbox(t)
	publishN(t, pool, ob, 3, 3)
	pub := ctxPublisher{called: make(chan struct{}, 1)}
	stop := runRelay(t, pool, pub, outbox.WithTable(table), outbox.WithMaxAttempts(1), outbox.WithWorkers(1))
	select {
	case <-pub.called:
	case <-time.After(10 * time.Second):
		t.Fatal("relay never published")
	}
	stop()
	if st := pending(t, ob); st.Pending != 3 || st.Retrying != 0 || st.Dead != 0 {
		t.Fatalf("after a stop during publish: %+v; want 3 pending, none retrying or dead", st)
	}
}
