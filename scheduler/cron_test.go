package scheduler_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/scheduler"
)

type tickMsg struct {
	Tick time.Time `json:"tick"`
}

func (tickMsg) MessageType() string { return "test.tick" }

func produceTick(tick time.Time) []router.Message { return []router.Message{tickMsg{Tick: tick}} }

// tickRow is one fired tick as recorded in the fired-ticks table.
type tickRow struct {
	tick   time.Time
	holder string
}

func firedTicks(t *testing.T, s *scheduler.Scheduler[pgx.Tx]) []tickRow {
	t.Helper()
	pool := testenv.Postgres(t)
	rows, err := pool.Query(context.Background(), `SELECT tick, holder FROM `+s.Table()+`_ticks ORDER BY tick`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []tickRow
	for rows.Next() {
		var r tickRow
		if err := rows.Scan(&r.tick, &r.holder); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// checkOnePerTick checks the sink holds exactly one message per fired tick,
// each tick a whole second.
func checkOnePerTick(t *testing.T, sink *tableSink) (ticks int) {
	t.Helper()
	var total, distinct int
	err := sink.pool.QueryRow(context.Background(),
		`SELECT count(*), count(DISTINCT due_at) FROM `+sink.table+` WHERE ce_type = 'test.tick'`).Scan(&total, &distinct)
	if err != nil {
		t.Fatal(err)
	}
	if total != distinct {
		t.Fatalf("%d cron messages for %d distinct ticks: a tick fired more than once", total, distinct)
	}
	var odd int
	_ = sink.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM `+sink.table+` WHERE due_at <> date_trunc('second', due_at)`).Scan(&odd)
	if odd != 0 {
		t.Fatalf("%d ticks are not on whole seconds", odd)
	}
	return total
}

func TestCronThreeInstancesFireOncePerTick(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	sink := newTableSink(t, pool)
	table := "sched_" + testenv.Suffix()
	t.Cleanup(func() { dropTables(pool, table) })
	var stops []func()
	for range 3 {
		s := newScheduler(t, pool, sink, table, scheduler.WithLeaseTTL(3*time.Second))
		if err := s.Cron("* * * * * *", produceTick, scheduler.WithCronName("every-second")); err != nil {
			t.Fatal(err)
		}
		stops = append(stops, run(t, s))
	}
	start := time.Now()
	time.Sleep(10 * time.Second)
	for _, stop := range stops {
		stop()
	}
	elapsed := time.Since(start)
	n := checkOnePerTick(t, sink)
	// Every second of the window fires, except possibly the very first
	// (before the first lease was taken) and the edges of the window.
	if n < int(elapsed/time.Second)-2 || n > int(elapsed/time.Second)+1 {
		t.Fatalf("%d ticks fired in %s by 3 replicas; want one per second", n, elapsed)
	}
	t.Logf("3 replicas, 1 s cron, %s: %d messages, %d distinct ticks", elapsed.Round(time.Millisecond), n, n)
}

func TestCronLeaseMovesWhenHolderDies(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	sink := newTableSink(t, pool)
	table := "sched_" + testenv.Suffix()
	t.Cleanup(func() { dropTables(pool, table) })
	const ttl = 2 * time.Second
	type replica struct {
		s    *scheduler.Scheduler[pgx.Tx]
		stop func()
	}
	replicas := map[string]replica{}
	for range 3 {
		s := newScheduler(t, pool, sink, table, scheduler.WithLeaseTTL(ttl))
		if err := s.Cron("* * * * * *", produceTick, scheduler.WithCronName("every-second")); err != nil {
			t.Fatal(err)
		}
		replicas[s.InstanceID()] = replica{s: s, stop: run(t, s)}
	}
	probe := replicas[firstKey(replicas)].s
	ctx := context.Background()
	// Wait for a leader that has fired at least two ticks.
	var leader string
	deadline := time.Now().Add(8 * time.Second)
	for {
		ticks := firedTicks(t, probe)
		if len(ticks) >= 2 {
			leader = ticks[len(ticks)-1].holder
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no cron tick fired within 8s (ticks: %v)", ticks)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if l, err := probe.CronLeader(ctx); err != nil || l != leader {
		t.Fatalf("lease holder %q (%v), but the last tick was fired by %q", l, err, leader)
	}
	// Kill the leader: it stops without releasing its lease.
	scheduler.SimulateCrash(replicas[leader].s)
	replicas[leader].stop()
	killed := time.Now()

	var takeover time.Time
	var newLeader string
	deadline = killed.Add(ttl + 3*time.Second)
	for takeover.IsZero() {
		for _, r := range firedTicks(t, probe) {
			if r.holder != leader && r.tick.After(killed.Add(-time.Second)) {
				takeover, newLeader = r.tick, r.holder
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no other replica fired within %s of the leader's death", ttl+3*time.Second)
		}
		time.Sleep(50 * time.Millisecond)
	}
	gap := takeover.Sub(killed)
	t.Logf("leader %s killed; %s fired the tick %s later (lease TTL %s)", leader, newLeader, gap.Round(time.Millisecond), ttl)
	// The lease expires at most ttl after its last renewal; the next tick
	// after that fires.
	if gap > ttl+time.Second+200*time.Millisecond {
		t.Fatalf("firing moved %s after the leader died; want within the lease TTL %s plus one tick", gap, ttl)
	}
	time.Sleep(1500 * time.Millisecond)
	for id, r := range replicas {
		if id != leader {
			r.stop()
		}
	}
	checkOnePerTick(t, sink)
	for _, r := range firedTicks(t, probe) {
		if r.holder == leader && r.tick.After(killed) {
			t.Fatalf("the dead leader fired tick %s after it was killed", r.tick)
		}
	}
}

func firstKey[V any](m map[string]V) string {
	for k := range m {
		return k
	}
	return ""
}
