package scheduler_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hexeract/hexeract/store"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/scheduler"
)

// refusalsOf returns the refusal count and due time of a pending message.
func refusalsOf(t *testing.T, s *scheduler.Scheduler[pgx.Tx], id string) (int, time.Time, bool) {
	t.Helper()
	pending, err := s.List(context.Background(), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pending {
		if p.ID == id {
			return p.Refusals, p.DueAt, true
		}
	}
	return 0, time.Time{}, false
}

// TestLongRefusedMessageStaysPostponed: a message the sink has refused
// many times (here 2,000: a day and a half of refusals) is still postponed by
// at most a minute. The backoff 2^n seconds used to be computed before the
// one-minute cap, so from the 44th refusal on it overflowed PostgreSQL's
// interval, the postponement failed and the message stayed due: it was
// claimed again every poll interval and failed every batch it was in.
func TestLongRefusedMessageStaysPostponed(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	ctx := context.Background()
	sink := scheduler.SinkFunc(func(context.Context, store.Executor, string, ...*message.Message) error {
		return errors.New("topic does not exist")
	})
	s := newScheduler(t, pool, sink, "", scheduler.WithPollInterval(100*time.Millisecond))
	ids, err := s.ScheduleWith(ctx, scheduler.Exec(s), time.Now().Add(-time.Second), reminder{N: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE `+s.Table()+` SET metadata = metadata || '{"hexeract_schedule_refusals": 2000}' WHERE id = $1`, ids[0]); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	run(t, s)
	testenv.WaitFor(t, 5*time.Second, "the 2001st refusal to be recorded", func() bool {
		n, _, _ := refusalsOf(t, s, ids[0])
		return n == 2001
	})
	_, due, _ := refusalsOf(t, s, ids[0])
	if due.Before(start.Add(30*time.Second)) || due.After(time.Now().Add(2*time.Minute)) {
		t.Errorf("refused message due %s after its 2001st refusal; want about a minute from now", due)
	}
}

// TestPushBackKeepsRescheduledTime: when the sink refuses two messages in a
// row, the rest of the failed batch is postponed by a second; a message of
// that batch that was rescheduled meanwhile (here a day ahead) must keep its
// new due time, not be moved back to a second from now and handed off early.
func TestPushBackKeepsRescheduledTime(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	ctx := context.Background()
	var (
		s         *scheduler.Scheduler[pgx.Tx]
		goodID    string
		later     = time.Now().Add(24 * time.Hour)
		delivered = make(chan string, 10)
	)
	sink := scheduler.SinkFunc(func(ctx context.Context, _ store.Executor, _ string, msgs ...*message.Message) error {
		for _, m := range msgs {
			switch string(m.Payload) {
			case `{"n":-1}`:
				return errors.New("refused")
			case `{"n":-2}`:
				if len(msgs) == 1 {
					// Handed off on its own: meanwhile the good message is
					// moved a day ahead by its owner.
					if err := s.Reschedule(context.Background(), goodID, later); err != nil && !errors.Is(err, scheduler.ErrNotFound) {
						return err
					}
				}
				return errors.New("refused")
			}
		}
		for _, m := range msgs {
			delivered <- string(m.Payload)
		}
		return nil
	})
	s = newScheduler(t, pool, sink, "", scheduler.WithPollInterval(100*time.Millisecond), scheduler.WithWorkers(1))
	now := time.Now()
	bad1, err := s.ScheduleWith(ctx, scheduler.Exec(s), now.Add(-3*time.Second), reminder{N: -1})
	if err != nil {
		t.Fatal(err)
	}
	bad2, err := s.ScheduleWith(ctx, scheduler.Exec(s), now.Add(-2*time.Second), reminder{N: -2})
	if err != nil {
		t.Fatal(err)
	}
	good, err := s.ScheduleWith(ctx, scheduler.Exec(s), now.Add(-time.Second), reminder{N: 3})
	if err != nil {
		t.Fatal(err)
	}
	goodID = good[0]
	run(t, s)
	testenv.WaitFor(t, 5*time.Second, "both refused messages to be postponed", func() bool {
		n1, _, _ := refusalsOf(t, s, bad1[0])
		n2, _, _ := refusalsOf(t, s, bad2[0])
		return n1 >= 1 && n2 >= 1
	})
	select {
	case p := <-delivered:
		t.Fatalf("message %s handed off; the good one was rescheduled a day ahead", p)
	default:
	}
	n, due, ok := refusalsOf(t, s, goodID)
	if !ok || !due.Equal(later.Truncate(time.Microsecond)) || n != 0 {
		t.Errorf("rescheduled message: pending %v, due %s, refusals %d; want due %s (its rescheduled time), no refusals", ok, due, n, later)
	}
}
