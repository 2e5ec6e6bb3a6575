package scheduler_test

import (
	"context"
	"testing"
	"time"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/scheduler"
)

// After its LISTEN connection is killed, the scheduler listens again and a
// newly scheduled message wakes the poller before its (long) poll interval.
func TestListenConnectionKilledReconnects(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	ctx := context.Background()
	sink := newTableSink(t, pool)
	s := newScheduler(t, pool, sink, "", scheduler.WithPollInterval(time.Minute))
	run(t, s)
	ch := scheduler.Channel(s)
	var first []int32
	testenv.WaitFor(t, 5*time.Second, "the LISTEN connection", func() bool { first = testenv.ListenPIDs(t, pool, ch); return len(first) == 1 })
	if _, err := s.ScheduleWith(ctx, scheduler.Exec(s), time.Now().Add(50*time.Millisecond), reminder{N: 1}); err != nil {
		t.Fatal(err)
	}
	sink.waitCount(t, 1, 10*time.Second)

	// Kill this scheduler's LISTEN session only (its channel is unique).
	var killed int
	if err := pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND query = $1`,
		`LISTEN "`+ch+`"`).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed != 1 {
		t.Fatalf("terminated %d LISTEN sessions, want 1", killed)
	}
	testenv.WaitFor(t, 10*time.Second, "a new LISTEN connection", func() bool {
		p := testenv.ListenPIDs(t, pool, ch)
		return len(p) == 1 && p[0] != first[0]
	})
	// Let the catch-up look that follows the reconnection pass: the poll
	// interval is a minute, so only the notification can wake the poller
	// within the deadline below.
	time.Sleep(300 * time.Millisecond)
	if _, err := s.ScheduleWith(ctx, scheduler.Exec(s), time.Now().Add(50*time.Millisecond), reminder{N: 2}); err != nil {
		t.Fatal(err)
	}
	sink.waitCount(t, 2, 10*time.Second)
}
