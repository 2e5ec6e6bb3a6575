package scheduler_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hexeract/hexeract/store/postgres"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/scheduler"
)

func TestDelayedMessageNotEarlyAndWithinBound(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	sink := newTableSink(t, pool)
	// A long poll interval: only the precise wake-up can meet the bound.
	s := newScheduler(t, pool, sink, "", scheduler.WithPollInterval(30*time.Second))
	run(t, s)
	ctx := context.Background()
	time.Sleep(200 * time.Millisecond) // let the poller go to sleep on an empty table

	start := time.Now()
	var ids []string
	for i, d := range []time.Duration{1500 * time.Millisecond, 700 * time.Millisecond, 1100 * time.Millisecond} {
		got, err := s.ScheduleWith(ctx, scheduler.Exec(s), time.Now().Add(d), reminder{N: i})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got...)
	}
	time.Sleep(500 * time.Millisecond)
	if total, _ := sink.count(t); total != 0 {
		t.Fatalf("%d messages delivered %s after scheduling, before any was due", total, time.Since(start))
	}
	sink.waitCount(t, 3, 5*time.Second)
	got := sink.deliveries(t)
	const bound = 250 * time.Millisecond
	for _, id := range ids {
		d, ok := got[id]
		if !ok {
			t.Fatalf("message %s not delivered", id)
		}
		late := d.DeliveredAt.Sub(d.DueAt)
		if late < 0 {
			t.Errorf("message %s delivered %s early", id, -late)
		}
		if late > bound {
			t.Errorf("message %s delivered %s late (bound %s, poll interval 30s)", id, late, bound)
		}
		t.Logf("message %s: %s late", id, late)
	}
	if n, err := s.Count(ctx); err != nil || n != 0 {
		t.Fatalf("pending after delivery = %d, %v", n, err)
	}
}

func TestCancelAndReschedule(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	sink := newTableSink(t, pool)
	s := newScheduler(t, pool, sink, "", scheduler.WithPollInterval(30*time.Second))
	ctx := context.Background()

	ids, err := s.ScheduleWith(ctx, scheduler.Exec(s), time.Now().Add(800*time.Millisecond), reminder{N: 1}, reminder{N: 2}, reminder{N: 3})
	if err != nil {
		t.Fatal(err)
	}
	cancelled, moved, kept := ids[0], ids[1], ids[2]
	if err := s.Cancel(ctx, cancelled); err != nil {
		t.Fatal(err)
	}
	if err := s.Cancel(ctx, cancelled); !errors.Is(err, scheduler.ErrNotFound) {
		t.Fatalf("second Cancel = %v, want ErrNotFound", err)
	}
	if err := s.Reschedule(ctx, "no-such-id", time.Now()); !errors.Is(err, scheduler.ErrNotFound) {
		t.Fatalf("Reschedule of an unknown id = %v, want ErrNotFound", err)
	}
	newDue := time.Now().Add(2 * time.Second)
	if err := s.Reschedule(ctx, moved, newDue); err != nil {
		t.Fatal(err)
	}
	// A cancel in a transaction that rolls back leaves the message scheduled.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CancelTx(ctx, tx, kept); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	pending, err := s.List(ctx, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 2 || pending[0].ID != kept || pending[1].ID != moved || pending[0].Type != "test.reminder" || pending[0].Topic != "test.reminder" {
		t.Fatalf("List = %+v, want [%s %s]", pending, kept, moved)
	}

	run(t, s)
	sink.waitCount(t, 2, 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	got := sink.deliveries(t)
	if len(got) != 2 {
		t.Fatalf("delivered %d messages, want 2 (one cancelled)", len(got))
	}
	if _, ok := got[cancelled]; ok {
		t.Fatal("the cancelled message was delivered")
	}
	d := got[moved]
	if d.DeliveredAt.Before(newDue) || d.DeliveredAt.Sub(newDue) > 300*time.Millisecond {
		t.Fatalf("rescheduled message delivered at %s, due %s", d.DeliveredAt, newDue)
	}
	if err := s.Cancel(ctx, kept); !errors.Is(err, scheduler.ErrNotFound) {
		t.Fatalf("Cancel after hand-off = %v, want ErrNotFound", err)
	}
}

func TestRolledBackScheduleNeverFires(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	sink := newTableSink(t, pool)
	s := newScheduler(t, pool, sink, "")
	run(t, s)
	ctx := context.Background()

	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rolledBack, err := s.Schedule(ctx, tx, time.Now(), reminder{N: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	tx, err = pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := s.After(ctx, tx, 300*time.Millisecond, reminder{N: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	sink.waitCount(t, 1, 5*time.Second)
	time.Sleep(500 * time.Millisecond)
	got := sink.deliveries(t)
	if _, ok := got[committed[0]]; !ok || len(got) != 1 {
		t.Fatalf("deliveries = %v, want only the committed message %s", got, committed[0])
	}
	if _, ok := got[rolledBack[0]]; ok {
		t.Fatal("a message scheduled in a rolled-back transaction was delivered")
	}
}

func TestTenThousandDueAtOnceAcrossThreeInstances(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	sink := newTableSink(t, pool)
	table := "sched_" + testenv.Suffix()
	t.Cleanup(func() { dropTables(pool, table) })
	var instances []*scheduler.Scheduler[pgx.Tx]
	for range 3 {
		instances = append(instances, newScheduler(t, pool, sink, table))
	}
	ctx := context.Background()
	const n = 10000
	msgs := make([]router.Message, n)
	for i := range msgs {
		msgs[i] = reminder{N: i}
	}
	due := time.Now().Add(time.Second)
	if _, err := instances[0].ScheduleWith(ctx, scheduler.Exec(instances[0]), due, msgs...); err != nil {
		t.Fatal(err)
	}
	for _, s := range instances {
		run(t, s)
	}
	sink.waitCount(t, n, 30*time.Second)
	time.Sleep(200 * time.Millisecond)
	total, distinct := sink.count(t)
	if total != n || distinct != n {
		t.Fatalf("delivered %d rows, %d distinct; want %d each", total, distinct, n)
	}
	if left, _ := instances[0].Count(ctx); left != 0 {
		t.Fatalf("%d messages left in the table", left)
	}
	var early int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+sink.table+` WHERE delivered_at < due_at`).Scan(&early); err != nil || early != 0 {
		t.Fatalf("%d messages delivered early (%v)", early, err)
	}
}

func TestCronInvalidSpecRefused(t *testing.T) {
	pool := testenv.Postgres(t)
	s := newScheduler(t, pool, newTableSink(t, pool), "")
	produce := func(time.Time) []router.Message { return nil }
	for _, spec := range []string{"* * * *", "61 * * * * *", "every minute", "", "@every 10s", "CRON_TZ=Mars/Olympus * * * * * *"} {
		err := s.Cron(spec, produce)
		if err == nil {
			t.Errorf("Cron(%q) accepted an invalid spec", spec)
			continue
		}
		if !strings.Contains(err.Error(), `"`+spec+`"`) {
			t.Errorf("Cron(%q) error does not quote the spec: %v", spec, err)
		}
	}
	if err := s.Cron("*/5 * * * * *", produce); err != nil {
		t.Fatalf("valid spec refused: %v", err)
	}
	if err := s.Cron("*/5 * * * * *", produce); err == nil || !strings.Contains(err.Error(), "CronName") {
		t.Fatalf("duplicate job name accepted or unhelpful error: %v", err)
	}
	if err := s.Cron("CRON_TZ=Europe/Paris 0 30 9 * * MON-FRI", produce); err != nil {
		t.Fatalf("spec with time zone refused: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	pool := testenv.Postgres(t)
	sink := newTableSink(t, pool)
	cases := []struct {
		name string
		err  func() error
		want string
	}{
		{"nil driver", func() error { _, err := scheduler.New[pgx.Tx](nil, sink); return err }, "driver"},
		{"nil sink", func() error { _, err := scheduler.New(postgres.New(pool), nil); return err }, "sink"},
		{"bad table", func() error {
			_, err := scheduler.New(postgres.New(pool), sink, scheduler.WithTable("x; DROP TABLE y"))
			return err
		}, "WithTable"},
		{"batch", func() error {
			_, err := scheduler.New(postgres.New(pool), sink, scheduler.WithBatchSize(0))
			return err
		}, "WithBatchSize"},
		{"lease", func() error {
			_, err := scheduler.New(postgres.New(pool), sink, scheduler.WithLeaseTTL(time.Millisecond))
			return err
		}, "WithLeaseTTL"},
	}
	for _, c := range cases {
		err := c.err()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v does not mention %q", c.name, err, c.want)
		}
	}
	s := newScheduler(t, pool, sink, "")
	if _, err := s.Schedule(context.Background(), nil, time.Now(), reminder{}); err == nil {
		t.Error("Schedule with a nil transaction accepted")
	}
	if _, err := s.ScheduleWith(context.Background(), scheduler.Exec(s), time.Time{}, reminder{}); err == nil {
		t.Error("Schedule at the zero time accepted")
	}
	if _, err := s.ScheduleWith(context.Background(), scheduler.Exec(s), time.Now(), nil); err == nil {
		t.Error("Schedule of a nil message accepted")
	}
	if _, err := s.ScheduleMessagesWith(context.Background(), scheduler.Exec(s), time.Now(), "t", message.NewMessage("", nil)); err == nil {
		t.Error("ScheduleMessages of a message without UUID accepted")
	}
	if _, err := s.ScheduleMessagesWith(context.Background(), scheduler.Exec(s), time.Now(), "", message.NewMessage("x", nil)); err == nil {
		t.Error("ScheduleMessages without a topic accepted")
	}
	if _, err := s.Redelivery(scheduler.RedeliveryConfig{Delays: []time.Duration{time.Second, 0}}); err == nil {
		t.Error("redelivery with a zero delay accepted")
	}
}

// A running poller sleeping until a message due in 10 s is woken by the
// NOTIFY of a Reschedule to an earlier time.
func TestRescheduleEarlierWakesSleepingPoller(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	sink := newTableSink(t, pool)
	s := newScheduler(t, pool, sink, "", scheduler.WithPollInterval(30*time.Second))
	ctx := context.Background()
	ids, err := s.ScheduleWith(ctx, scheduler.Exec(s), time.Now().Add(10*time.Second), reminder{N: 1})
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	time.Sleep(300 * time.Millisecond) // the poller now sleeps until +10s
	due := time.Now().Add(300 * time.Millisecond)
	if err := s.Reschedule(ctx, ids[0], due); err != nil {
		t.Fatal(err)
	}
	sink.waitCount(t, 1, 3*time.Second)
	d := sink.deliveries(t)[ids[0]]
	if late := d.DeliveredAt.Sub(due); late < 0 || late > 250*time.Millisecond {
		t.Fatalf("rescheduled message delivered %s after its new due time", late)
	}
}

// Without notifications the poll interval bounds the lateness.
func TestWithoutNotifyPollsAtTheInterval(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	sink := newTableSink(t, pool)
	s := newScheduler(t, pool, sink, "", scheduler.WithoutNotify(), scheduler.WithPollInterval(200*time.Millisecond))
	run(t, s)
	time.Sleep(300 * time.Millisecond)
	ids, err := s.ScheduleWith(context.Background(), scheduler.Exec(s), time.Now().Add(50*time.Millisecond), reminder{N: 1})
	if err != nil {
		t.Fatal(err)
	}
	sink.waitCount(t, 1, 3*time.Second)
	d := sink.deliveries(t)[ids[0]]
	if late := d.DeliveredAt.Sub(d.DueAt); late < 0 || late > 200*time.Millisecond+150*time.Millisecond {
		t.Fatalf("delivered %s after due with a 200ms poll interval", late)
	}
}
