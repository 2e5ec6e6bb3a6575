package outbox_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/router"
)

// fillKeyed writes n AccountEvent rows spread round-robin over keys
// ordering keys ("acct-0" ...), 1000 per transaction, and returns their
// ids. Event N counts from 1 per key, in commit order.
func fillKeyed(tb testing.TB, pool *pgxpool.Pool, ob *outbox.Outbox[pgx.Tx], n, keys int) []string {
	tb.Helper()
	ctx := context.Background()
	next := make([]int, keys)
	ids := make([]string, 0, n)
	for done := 0; done < n; {
		k := min(1000, n-done)
		msgs := make([]router.Message, k)
		for i := range msgs {
			key := (done + i) % keys
			next[key]++
			msgs[i] = AccountEvent{Account: fmt.Sprint("acct-", key), N: next[key]}
		}
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			got, err := ob.Publish(ctx, tx, msgs...)
			ids = append(ids, got...)
			return err
		}); err != nil {
			tb.Fatal(err)
		}
		done += k
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE `+ob.Table()); err != nil {
		tb.Fatal(err)
	}
	return ids
}

// parallelism wraps a publisher and records the largest number of Publish
// calls in flight at once.
type parallelism struct {
	message.Publisher
	now, peak atomic.Int32
}

func (p *parallelism) Publish(topic string, msgs ...*message.Message) error {
	n := p.now.Add(1)
	defer p.now.Add(-1)
	for {
		m := p.peak.Load()
		if n <= m || p.peak.CompareAndSwap(m, n) {
			break
		}
	}
	return p.Publisher.Publish(topic, msgs...)
}

// A backlog of keyed rows drains continuously: a worker whose claim was
// full (or that committed keyed rows, which may unblock their keys'
// next rows) claims again at once instead of waiting for the poll, and
// the other workers take other keys meanwhile. Before the fix, 6,000 rows
// over 50 keys took one poll interval per batch (about 60 s with a 5 s
// poll) with one publish in flight.
func TestKeyedBacklogDrainsWithoutWaitingForThePoll(t *testing.T) {
	pool, ob, table := newOutbox(t)
	const rows, keys = 6000, 50
	const poll = 5 * time.Second
	ids := fillKeyed(t, pool, ob, rows, keys)
	rec := newRecorder()
	rec.hold = time.Millisecond // a broker round trip, so that parallel publishes overlap
	pub := &parallelism{Publisher: rec}
	start := time.Now()
	runRelay(t, pool, pub, outbox.WithTable(table), outbox.WithPollInterval(poll), outbox.WithWorkers(4), outbox.WithBatchSize(256))
	// Drained in well under one poll interval in total, let alone one per batch.
	waitFor(t, poll, "6000 keyed rows delivered with a 5 s poll interval", func() bool { return rec.distinct() == rows })
	took := time.Since(start)
	waitFor(t, poll, "outbox empty", func() bool { return pending(t, ob).Pending == 0 })
	time.Sleep(50 * time.Millisecond) // a duplicate would show up here

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.got) != rows {
		t.Fatalf("%d publishes for %d rows", len(rec.got), rows)
	}
	for _, id := range ids {
		if c := rec.count[id]; c != 1 {
			t.Fatalf("message %s published %d times", id, c)
		}
	}
	last := map[string]int{}
	for _, m := range rec.got {
		var e AccountEvent
		if err := (router.JSON{}).Unmarshal(m.Payload, &e); err != nil {
			t.Fatal(err)
		}
		if e.N != last[e.Account]+1 {
			t.Fatalf("key %s: event %d published after %d", e.Account, e.N, last[e.Account])
		}
		last[e.Account] = e.N
	}
	if len(last) != keys {
		t.Fatalf("%d keys published, want %d", len(last), keys)
	}
	if p := pub.peak.Load(); p < 2 {
		t.Fatalf("at most %d publish in flight at once; the other workers stayed idle", p)
	}
	t.Logf("%d rows over %d keys drained in %v with a %v poll interval, up to %d publishes in flight", rows, keys, took.Round(time.Millisecond), poll, pub.peak.Load())
}

// A row written for a key while another row of that key is in flight
// cannot be claimed by the worker its Signal wakes (the key's head is
// locked); the worker that holds the key claims again after its commit
// and delivers it, instead of leaving it to the next poll.
func TestRowBehindAnInFlightKeyGoesWithoutWaitingForThePoll(t *testing.T) {
	pool, ob, table := newOutbox(t)
	ctx := context.Background()
	publish := func(n int) {
		t.Helper()
		if err := ob.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
			_, err := ob.Publish(ctx, tx, AccountEvent{Account: "hot", N: n})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	publish(1)
	g := newGate()
	t.Cleanup(g.open)
	const poll = 5 * time.Second
	runRelay(t, pool, g, outbox.WithTable(table), outbox.WithPollInterval(poll), outbox.WithWorkers(2))
	select {
	case <-g.arrived: // event 1 is in flight, its row locked
	case <-time.After(10 * time.Second):
		t.Fatal("relay never published")
	}
	publish(2) // Signal wakes the idle worker, which finds the key's head locked
	time.Sleep(300 * time.Millisecond)
	g.open()
	start := time.Now()
	waitFor(t, poll/2, "event 2 delivered well before the next poll", func() bool { return g.distinct() == 2 })
	t.Logf("event 2 delivered %v after event 1 was released (poll interval %v)", time.Since(start).Round(time.Millisecond), poll)
	var got []int
	for _, m := range g.messages() {
		var e AccountEvent
		if err := (router.JSON{}).Unmarshal(m.Payload, &e); err != nil {
			t.Fatal(err)
		}
		got = append(got, e.N)
	}
	if len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("published %v, want [1 2]", got)
	}
}
