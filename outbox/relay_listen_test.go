package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/store/postgres"
)

// After its LISTEN connection is killed, the relay listens again and a
// notification (not the hour-long poll interval, not an in-process signal)
// wakes it for new rows. The rows are published in plain transactions, so
// only Signal's NOTIFY announces them.
func TestRelayListenConnectionKilledReconnects(t *testing.T) {
	pool, ob, table := newOutbox(t)
	rec := newRecorder()
	r, err := outbox.NewRelay(postgres.New(pool), rec, outbox.WithTable(table), outbox.WithWorkers(1), outbox.WithPollInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	outbox.IgnoreLocalSignals(r)
	testenv.Run(t, "relay", 15*time.Second, r.Run)
	ch := ob.Channel()
	var first []int32
	waitFor(t, 5*time.Second, "the LISTEN connection", func() bool { first = testenv.ListenPIDs(t, pool, ch); return len(first) == 1 })
	publishN(t, pool, ob, 1, 1)
	ob.Signal() // a NOTIFY: the relay ignores in-process signals
	waitFor(t, 10*time.Second, "the first row delivered", func() bool { return rec.distinct() == 1 })

	// Kill this relay's LISTEN session only (the channel is the table's).
	var killed int
	if err := pool.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND query = $1`,
		`LISTEN "`+ch+`"`).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed != 1 {
		t.Fatalf("terminated %d LISTEN sessions, want 1", killed)
	}
	waitFor(t, 10*time.Second, "a new LISTEN connection", func() bool {
		p := testenv.ListenPIDs(t, pool, ch)
		return len(p) == 1 && p[0] != first[0]
	})
	publishN(t, pool, ob, 1, 1)
	time.Sleep(300 * time.Millisecond)
	if n := rec.distinct(); n != 1 {
		t.Fatalf("%d rows delivered before the notification, want 1", n)
	}
	ob.Signal() // a NOTIFY: the relay ignores in-process signals
	waitFor(t, 10*time.Second, "the second row delivered through the new LISTEN", func() bool { return rec.distinct() == 2 })
}
