package scheduler_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/postgres"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/scheduler"
)

// crashingSink writes the batch like tableSink, then, for its first crashes
// calls, kills its own database session before the hand-off can commit (the
// connection dies as it would when the process or the server dies), or
// fails with an error.
type crashingSink struct {
	*tableSink
	calls   atomic.Int32
	crashes int32
}

func (c *crashingSink) PublishMessagesWith(ctx context.Context, tx store.Executor, topic string, msgs ...*message.Message) error {
	if err := c.tableSink.PublishMessagesWith(ctx, tx, topic, msgs...); err != nil {
		return err
	}
	n := c.calls.Add(1)
	switch {
	case n > c.crashes:
		return nil
	case n%2 == 1:
		ptx, _ := postgres.New(c.pool).TxOf(tx)
		_, err := ptx.Exec(ctx, `SELECT pg_terminate_backend(pg_backend_pid())`)
		if err == nil {
			return errors.New("session survived pg_terminate_backend")
		}
		return err
	default:
		return errors.New("broker unavailable")
	}
}

// TestHandOffCrashLosesAndDoublesNothing kills the hand-off transaction
// several times after the sink wrote the messages: every message must still
// arrive exactly once.
func TestHandOffCrashLosesAndDoublesNothing(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	sink := &crashingSink{tableSink: newTableSink(t, pool), crashes: 4}
	s := newScheduler(t, pool, sink, "", scheduler.WithBatchSize(100), scheduler.WithWorkers(1))
	const n = 1000
	msgs := make([]router.Message, n)
	for i := range msgs {
		msgs[i] = reminder{N: i}
	}
	ids, err := s.ScheduleWith(context.Background(), scheduler.Exec(s), time.Now(), msgs...)
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	sink.waitCount(t, n, 20*time.Second)
	time.Sleep(300 * time.Millisecond)
	got := sink.deliveries(t) // fails on a duplicate
	if len(got) != n {
		t.Fatalf("delivered %d distinct messages, want %d", len(got), n)
	}
	for _, id := range ids {
		if _, ok := got[id]; !ok {
			t.Fatalf("message %s lost", id)
		}
	}
	if calls := sink.calls.Load(); calls < n/100+sink.crashes {
		t.Fatalf("sink called %d times; the crashes did not happen", calls)
	}
}
