package storetest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/store"
)

// RunOutbox runs the outbox conformance tests: concurrent relays deliver
// every row exactly once, per-key order holds under broker failures,
// backoff, dead rows, replay, purge and retention work, a rolled-back
// transaction publishes nothing, and a lost connection (or, on an embedded
// database, a killed process) loses nothing.
func RunOutbox[TTx any](t *testing.T, h Harness[TTx]) {
	if url := os.Getenv(childEnv); url != "" {
		// The re-executed test binary of ProcessKilledMidBatch: be the
		// relay process until killed.
		runChildRelay(t, h, url)
		return
	}
	t.Run("ThreeRelaysDeliverEachRowOnce", func(t *testing.T) { t.Parallel(); testThreeRelays(t, h) })
	t.Run("PerKeyOrderWithBrokerFailures", func(t *testing.T) { t.Parallel(); testKeyOrder(t, h) })
	t.Run("PerKeyCommitOrderWithConcurrentProducers", func(t *testing.T) { t.Parallel(); testProducerKeyOrder(t, h) })
	t.Run("BackoffDeadReplayPurge", func(t *testing.T) { t.Parallel(); testDead(t, h) })
	t.Run("Retention", func(t *testing.T) { t.Parallel(); testRetention(t, h) })
	t.Run("RolledBackPublishesNothing", func(t *testing.T) { t.Parallel(); testRollback(t, h) })
	if h.KillConnections != nil {
		t.Run("ConnectionsKilledMidBatch", func(t *testing.T) { t.Parallel(); testKilledConnections(t, h) })
	} else {
		t.Run("ProcessKilledMidBatch", func(t *testing.T) { testKilledProcess(t, h) })
	}
}

const childEnv = "HEXERACT_STORETEST_RELAY_CHILD"

// Event is the message the conformance tests publish.
type Event struct {
	Key string `json:"key,omitempty"`
	N   int    `json:"n"`
}

// MessageType names the event.
func (Event) MessageType() string { return "storetest.event" }

// OrderingKey is the event's key.
func (e Event) OrderingKey() string { return e.Key }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// counter is a publisher that counts deliveries per message id, records
// each key's order, and fails as fail says.
type counter struct {
	mu    sync.Mutex
	count map[string]int
	order map[string][]int // key -> N in delivery order
	fail  func(msgs []*message.Message) error
	hold  time.Duration
	total int
}

func newCounter() *counter { return &counter{count: map[string]int{}, order: map[string][]int{}} }

func (c *counter) Publish(_ string, msgs ...*message.Message) error {
	if c.hold > 0 {
		time.Sleep(c.hold)
	}
	if c.fail != nil {
		if err := c.fail(msgs); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range msgs {
		c.count[m.UUID]++
		c.total++
		if k := m.Metadata.Get(router.KeyPartitionKey); k != "" {
			var e Event
			_ = json.Unmarshal(m.Payload, &e)
			c.order[k] = append(c.order[k], e.N)
		}
	}
	return nil
}

func (c *counter) Close() error { return nil }

func (c *counter) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.count)
}

func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// newOutbox opens the outbox on d and migrates it.
func newOutbox[TTx any](t testing.TB, d store.Driver[TTx], opts ...outbox.Option) *outbox.Outbox[TTx] {
	t.Helper()
	ob, err := outbox.New(d, append([]outbox.Option{outbox.WithTable("storetest_outbox")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return ob
}

// startRelay runs a relay on st until the test ends.
func startRelay(t testing.TB, st store.Store, pub message.Publisher, opts ...outbox.RelayOption) (stop func()) {
	t.Helper()
	r, err := outbox.NewRelay(st, pub, append([]outbox.RelayOption{
		outbox.WithTable("storetest_outbox"), outbox.WithLogger(quiet()), outbox.WithPollInterval(50 * time.Millisecond),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("relay: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("relay did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// publish writes msgs in transactions of perTx and returns their ids.
func publish[TTx any](t testing.TB, d store.Driver[TTx], ob *outbox.Outbox[TTx], msgs []router.Message, perTx int) []string {
	t.Helper()
	ctx := context.Background()
	var ids []string
	for start := 0; start < len(msgs); start += perTx {
		part := msgs[start:min(start+perTx, len(msgs))]
		err := d.InTx(ctx, func(ctx context.Context, tx TTx) error {
			got, err := ob.Publish(ctx, tx, part...)
			ids = append(ids, got...)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func events(n int, key func(i int) string) []router.Message {
	out := make([]router.Message, n)
	for i := range out {
		k := ""
		if key != nil {
			k = key(i)
		}
		out[i] = Event{Key: k, N: i}
	}
	return out
}

func checkOnce(t testing.TB, c *counter, ids []string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if n := c.count[id]; n != 1 {
			t.Fatalf("message %s delivered %d times, want once", id, n)
		}
	}
	if len(c.count) != len(ids) {
		t.Fatalf("%d distinct messages delivered for %d rows", len(c.count), len(ids))
	}
}

func pendingRows[TTx any](t testing.TB, ob *outbox.Outbox[TTx]) outbox.Stats {
	t.Helper()
	st, err := ob.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// testThreeRelays: three relays, each on its own driver value (three
// processes), drain 20k rows; each row is delivered exactly once.
func testThreeRelays[TTx any](t *testing.T, h Harness[TTx]) {
	url := h.URL(t)
	d := h.Open(t, url)
	ob := newOutbox(t, d)
	ids := publish(t, d, ob, events(20000, nil), 1000)
	c := newCounter()
	start := time.Now()
	for range 3 {
		startRelay(t, h.Open(t, url), c, outbox.WithWorkers(2), outbox.WithBatchSize(200))
	}
	waitUntil(t, 60*time.Second, "20000 deliveries", func() bool { return c.distinct() == len(ids) })
	t.Logf("3 relays drained %d rows in %v", len(ids), time.Since(start).Round(time.Millisecond))
	// The last settlement may still be on its way.
	waitUntil(t, 10*time.Second, "the outbox to empty", func() bool { return pendingRows(t, ob).Pending == 0 })
	time.Sleep(200 * time.Millisecond)
	checkOnce(t, c, ids)
}

// testKeyOrder: 3 relays, 20 keys, one broker failure in five: every key's
// messages are delivered in order, each once.
func testKeyOrder[TTx any](t *testing.T, h Harness[TTx]) {
	url := h.URL(t)
	d := h.Open(t, url)
	ob := newOutbox(t, d)
	const keys, perKey = 20, 60
	msgs := make([]router.Message, 0, keys*perKey)
	for n := range perKey {
		for k := range keys {
			msgs = append(msgs, Event{Key: "k" + strconv.Itoa(k), N: n})
		}
	}
	// Published through PublishMessages (the scheduler's and the sagas'
	// path); the payload carries N.
	var ids []string
	ctx := context.Background()
	for start := 0; start < len(msgs); start += 100 {
		err := d.InTx(ctx, func(ctx context.Context, tx TTx) error {
			for _, m := range msgs[start : start+100] {
				e := m.(Event)
				wm, err := router.NewMessage(ctx, e, router.EncodeOptions{})
				if err != nil {
					return err
				}
				if err := ob.PublishMessages(ctx, tx, "storetest.event", wm); err != nil {
					return err
				}
				ids = append(ids, wm.UUID)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	c := newCounter()
	var rmu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	c.fail = func([]*message.Message) error {
		rmu.Lock()
		defer rmu.Unlock()
		if rng.IntN(5) == 0 {
			return errors.New("injected broker failure")
		}
		return nil
	}
	for range 3 {
		startRelay(t, h.Open(t, url), c, outbox.WithWorkers(2), outbox.WithBatchSize(50),
			outbox.WithBackoff(5*time.Millisecond, 20*time.Millisecond), outbox.WithMaxAttempts(1000))
	}
	waitUntil(t, 60*time.Second, "keyed deliveries", func() bool { return c.distinct() == len(ids) })
	time.Sleep(100 * time.Millisecond)
	checkOnce(t, c, ids)
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, order := range c.order {
		for i := range order {
			if order[i] != i {
				t.Fatalf("key %s delivered out of order: %v", k, order)
			}
		}
	}
	if len(c.order) != keys {
		t.Fatalf("%d keys delivered, want %d", len(c.order), keys)
	}
}

// testProducerKeyOrder: producers in two processes write messages of one
// key concurrently, each publishing before it takes a business row lock
// that fixes the commit order; the relay delivers them in commit order
// (the outbox's per-key lock makes sequence order commit order).
func testProducerKeyOrder[TTx any](t *testing.T, h Harness[TTx]) {
	url := h.URL(t)
	d := h.Open(t, url)
	d2 := h.Open(t, url)
	ob := newOutbox(t, d)
	ob2 := newOutbox(t, d2)
	ctx := context.Background()
	if err := d.InTx(ctx, func(ctx context.Context, tx TTx) error {
		if err := h.Exec(ctx, tx, "CREATE TABLE storetest_turn (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"); err != nil {
			return err
		}
		if err := h.Exec(ctx, tx, "INSERT INTO storetest_turn (id, n) VALUES (1, 0)"); err != nil {
			return err
		}
		return h.Exec(ctx, tx, "CREATE TABLE storetest_commit_order (id VARCHAR(64) NOT NULL, n INTEGER NOT NULL)")
	}); err != nil {
		t.Fatal(err)
	}
	insert := "INSERT INTO storetest_commit_order (id, n) VALUES (?, ?)"
	if d.Dialect() == store.Postgres {
		insert = "INSERT INTO storetest_commit_order (id, n) VALUES ($1, $2)"
	}
	const producers, perProducer = 6, 25
	turn := map[string]int64{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for p := range producers {
		dd, o := d, ob
		if p%2 == 1 {
			dd, o = d2, ob2
		}
		wg.Go(func() {
			for i := range perProducer {
				var id string
				var n int64
				err := dd.InTx(ctx, func(ctx context.Context, tx TTx) error {
					ids, err := o.Publish(ctx, tx, Event{Key: "hot", N: p*1000 + i})
					if err != nil {
						return err
					}
					id = ids[0]
					time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
					// The business row lock: commits happen in the order of n.
					if err := h.Exec(ctx, tx, "UPDATE storetest_turn SET n = n + 1 WHERE id = 1"); err != nil {
						return err
					}
					if n, err = h.QueryInt(ctx, tx, "SELECT n FROM storetest_turn WHERE id = 1"); err != nil {
						return err
					}
					return h.Exec(ctx, tx, insert, id, n)
				})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				turn[id] = n
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	var order []string
	var omu sync.Mutex
	pub := publisherFunc(func(_ string, msgs ...*message.Message) error {
		omu.Lock()
		defer omu.Unlock()
		for _, m := range msgs {
			order = append(order, m.UUID)
		}
		return nil
	})
	for _, st := range []store.Store{d, d2} {
		startRelay(t, st, pub, outbox.WithBatchSize(7))
	}
	waitUntil(t, 30*time.Second, "every message", func() bool {
		omu.Lock()
		defer omu.Unlock()
		return len(order) >= producers*perProducer
	})
	omu.Lock()
	defer omu.Unlock()
	for i := 1; i < len(order); i++ {
		if turn[order[i]] <= turn[order[i-1]] {
			t.Fatalf("delivery %d committed as number %d, after number %d: not in commit order", i, turn[order[i]], turn[order[i-1]])
		}
	}
}

// testDead: a row that always fails backs off, dies after max attempts,
// stops holding back its key, and is replayed or purged.
func testDead[TTx any](t *testing.T, h Harness[TTx]) {
	d := h.OpenFresh(t)
	ob := newOutbox(t, d)
	ctx := context.Background()
	poison := publish(t, d, ob, []router.Message{Event{Key: "a", N: -1}, Event{Key: "b", N: -2}}, 2)
	after := publish(t, d, ob, []router.Message{Event{Key: "a", N: 1}}, 1)
	c := newCounter()
	var mu sync.Mutex
	broken := true
	attempts := map[string][]time.Time{}
	c.fail = func(msgs []*message.Message) error {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			if broken && (m.UUID == poison[0] || m.UUID == poison[1]) {
				if len(msgs) == 1 { // a failed batch is retried one by one: count those
					attempts[m.UUID] = append(attempts[m.UUID], time.Now())
				}
				return errors.New("poison")
			}
		}
		return nil
	}
	stop := startRelay(t, d, c, outbox.WithMaxAttempts(3), outbox.WithBackoff(200*time.Millisecond, 400*time.Millisecond))
	waitUntil(t, 20*time.Second, "two dead rows", func() bool { return pendingRows(t, ob).Dead == 2 })
	// The key's next row goes once the dead row no longer holds it back.
	waitUntil(t, 10*time.Second, "the row behind the dead one", func() bool { return c.distinct() == 1 })
	stop()
	mu.Lock()
	at := attempts[poison[0]]
	mu.Unlock()
	if len(at) != 3 {
		t.Fatalf("%d attempts before dying, want 3", len(at))
	}
	// Backoff: 200ms then 400ms, minus up to 20% jitter.
	if gap := at[1].Sub(at[0]); gap < 150*time.Millisecond {
		t.Fatalf("retried after %v, want the 200ms backoff", gap)
	}
	if gap := at[2].Sub(at[1]); gap < 300*time.Millisecond {
		t.Fatalf("retried after %v, want the 400ms backoff", gap)
	}
	if c.count[after[0]] != 1 {
		t.Fatalf("the row behind the dead one was delivered %d times", c.count[after[0]])
	}
	dead, err := ob.DeadLetters(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 2 || dead[0].ID != poison[0] || dead[0].Attempts != 3 || dead[0].LastError != "poison" || dead[0].OrderingKey != "a" {
		t.Fatalf("dead rows = %+v", dead)
	}
	if n, err := ob.PurgeDead(ctx, []string{poison[1]}, 0, nil); err != nil || n != 1 {
		t.Fatalf("PurgeDead = %d, %v", n, err)
	}
	mu.Lock()
	broken = false
	mu.Unlock()
	if n, err := ob.ReplayDead(ctx, nil, 0, nil); err != nil || n != 1 {
		t.Fatalf("ReplayDead = %d, %v", n, err)
	}
	if st := pendingRows(t, ob); st.Dead != 0 || st.Pending != 1 {
		t.Fatalf("after replay and purge: %+v", st)
	}
	startRelay(t, d, c)
	waitUntil(t, 10*time.Second, "the replayed row", func() bool { return c.distinct() == 2 })
	if c.count[poison[1]] != 0 {
		t.Fatal("the purged row was delivered")
	}
}

// testRetention: delivered rows are kept, then cleaned up.
func testRetention[TTx any](t *testing.T, h Harness[TTx]) {
	d := h.OpenFresh(t)
	ob := newOutbox(t, d)
	ids := publish(t, d, ob, events(300, func(i int) string { return []string{"", "x"}[i%2] }), 100)
	c := newCounter()
	startRelay(t, d, c, outbox.WithRetention(time.Hour), outbox.WithBatchSize(64))
	waitUntil(t, 20*time.Second, "deliveries", func() bool { return c.distinct() == len(ids) })
	waitUntil(t, 10*time.Second, "delivered rows kept", func() bool { return pendingRows(t, ob).Delivered == int64(len(ids)) })
	if n, err := ob.CleanupDelivered(context.Background(), time.Hour); err != nil || n != 0 {
		t.Fatalf("CleanupDelivered(1h) = %d, %v; want nothing that young", n, err)
	}
	time.Sleep(5 * time.Millisecond)
	if n, err := ob.CleanupDelivered(context.Background(), time.Millisecond); err != nil || n != int64(len(ids)) {
		t.Fatalf("CleanupDelivered = %d, %v; want %d", n, err, len(ids))
	}
	if st := pendingRows(t, ob); st.Delivered != 0 || st.Pending != 0 {
		t.Fatalf("after cleanup: %+v", st)
	}
}

// testRollback: rows written in a rolled-back transaction are never
// delivered.
func testRollback[TTx any](t *testing.T, h Harness[TTx]) {
	d := h.OpenFresh(t)
	ob := newOutbox(t, d)
	c := newCounter()
	startRelay(t, d, c, outbox.WithPollInterval(20*time.Millisecond))
	boom := errors.New("business failure")
	err := ob.InTx(context.Background(), func(ctx context.Context, tx TTx) error {
		if _, err := ob.Publish(ctx, tx, events(10, nil)...); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx = %v", err)
	}
	ids := publish(t, d, ob, events(1, nil), 1)
	ob.Signal()
	waitUntil(t, 10*time.Second, "the committed row", func() bool { return c.distinct() == 1 })
	// The last settlement may still be on its way.
	waitUntil(t, 10*time.Second, "the outbox to empty", func() bool { return pendingRows(t, ob).Pending == 0 })
	time.Sleep(200 * time.Millisecond)
	checkOnce(t, c, ids)
}

// testKilledConnections: the database connections of the relays are
// killed while they work; every row is still delivered, and applying
// the messages through an inbox applies each once.
func testKilledConnections[TTx any](t *testing.T, h Harness[TTx]) {
	url := h.URL(t)
	d := h.Open(t, url)
	ob := newOutbox(t, d)
	in, err := outbox.NewInbox(d, outbox.WithInboxTable("storetest_inbox"))
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	ids := publish(t, d, ob, events(3000, func(i int) string {
		if i%3 == 0 {
			return "k" + strconv.Itoa(i%7)
		}
		return ""
	}), 500)
	ctx := context.Background()
	if err := d.InTx(ctx, func(ctx context.Context, tx TTx) error {
		return h.Exec(ctx, tx, "CREATE TABLE storetest_applied (id VARCHAR(64) NOT NULL)")
	}); err != nil {
		t.Fatal(err)
	}
	insert := "INSERT INTO storetest_applied (id) VALUES (?)"
	if d.Dialect() == store.Postgres {
		insert = "INSERT INTO storetest_applied (id) VALUES ($1)"
	}
	c := newCounter()
	c.hold = 2 * time.Millisecond
	c.fail = func(msgs []*message.Message) error {
		// Apply each message through the inbox, as a consumer would: the
		// effect is a row of storetest_applied.
		for _, m := range msgs {
			if _, err := in.Process(ctx, "storetest", m.UUID, func(ctx context.Context, tx TTx) error {
				return h.Exec(ctx, tx, insert, m.UUID)
			}); err != nil {
				return err
			}
		}
		return nil
	}
	for range 2 {
		startRelay(t, h.Open(t, url), c, outbox.WithWorkers(2), outbox.WithBatchSize(50), outbox.WithLease(2*time.Second),
			outbox.WithBackoff(10*time.Millisecond, 50*time.Millisecond), outbox.WithMaxAttempts(1000))
	}
	kills := 0
	for round := range 4 {
		waitUntil(t, 30*time.Second, "progress", func() bool { return c.distinct() > (round+1)*len(ids)/6 })
		kills += h.KillConnections(t, url)
	}
	if kills == 0 {
		t.Fatal("KillConnections found no connection to kill")
	}
	waitUntil(t, 60*time.Second, "every row after the kills", func() bool { return c.distinct() == len(ids) })
	waitUntil(t, 10*time.Second, "the outbox to empty", func() bool {
		st, err := ob.Stats(context.Background())
		return err == nil && st.Pending == 0
	})
	var rows, distinct int64
	if err := d.InTx(ctx, func(ctx context.Context, tx TTx) error {
		var err error
		if rows, err = h.QueryInt(ctx, tx, "SELECT COUNT(*) FROM storetest_applied"); err != nil {
			return err
		}
		distinct, err = h.QueryInt(ctx, tx, "SELECT COUNT(DISTINCT id) FROM storetest_applied")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if rows != int64(len(ids)) || distinct != int64(len(ids)) {
		t.Fatalf("%d effects applied (%d distinct) for %d messages; want each once", rows, distinct, len(ids))
	}
	t.Logf("%d connections killed; %d publishes for %d rows", kills, c.total, len(ids))
}

// testKilledProcess: a relay process is SIGKILLed in the middle of its
// batches; another relay then delivers every row (the killed relay's
// claims expire with their lease).
func testKilledProcess[TTx any](t *testing.T, h Harness[TTx]) {
	url := h.URL(t)
	d := h.Open(t, url)
	ob := newOutbox(t, d)
	ids := publish(t, d, ob, events(2000, func(i int) string { return []string{"", "k1", "k2", ""}[i%4] }), 500)
	log := t.TempDir() + "/child.log"
	parts := strings.Split(t.Name(), "/")
	for i := range parts {
		parts[i] = "^" + parts[i] + "$"
	}
	cmd := exec.Command(os.Args[0], "-test.run="+strings.Join(parts, "/"), "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+url, childEnv+"_LOG="+log)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	childDelivered := func() map[string]bool {
		f, err := os.Open(log)
		if err != nil {
			return nil
		}
		defer func() { _ = f.Close() }()
		seen := map[string]bool{}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			seen[sc.Text()] = true
		}
		return seen
	}
	waitUntil(t, 30*time.Second, "the child relay to deliver some rows", func() bool { return len(childDelivered()) > 300 })
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	before := childDelivered()
	if len(before) >= len(ids) {
		t.Fatalf("the child delivered everything (%d) before it was killed; output:\n%s", len(before), out.String())
	}
	c := newCounter()
	startRelay(t, d, c, outbox.WithLease(time.Second))
	waitUntil(t, 30*time.Second, "the rest after the kill", func() bool {
		st, err := ob.Stats(context.Background())
		return err == nil && st.Pending == 0
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	lost := 0
	for _, id := range ids {
		if !before[id] && c.count[id] == 0 {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d rows lost after the relay process was killed", lost)
	}
	t.Logf("child delivered %d before SIGKILL; the survivor delivered %d", len(before), len(c.count))
}

// runChildRelay is the relay process of testKilledProcess: it appends each
// delivered id to a file and runs until killed.
func runChildRelay[TTx any](t *testing.T, h Harness[TTx], url string) {
	f, err := os.OpenFile(os.Getenv(childEnv+"_LOG"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	d := h.Open(t, url)
	pub := publisherFunc(func(_ string, msgs ...*message.Message) error {
		time.Sleep(5 * time.Millisecond) // a broker round trip: be killed in the middle of it
		var b strings.Builder
		for _, m := range msgs {
			fmt.Fprintln(&b, m.UUID)
		}
		_, err := f.WriteString(b.String())
		return err
	})
	r, err := outbox.NewRelay(d, pub, outbox.WithTable("storetest_outbox"), outbox.WithLogger(quiet()),
		outbox.WithBatchSize(20), outbox.WithWorkers(2), outbox.WithLease(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	_ = r.Run(context.Background()) // until SIGKILL
}

type publisherFunc func(topic string, msgs ...*message.Message) error

func (f publisherFunc) Publish(topic string, msgs ...*message.Message) error {
	return f(topic, msgs...)
}
func (publisherFunc) Close() error { return nil }
