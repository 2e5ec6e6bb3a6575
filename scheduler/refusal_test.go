package scheduler_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hexeract/hexeract/store"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/scheduler"
)

// TestRefusedMessageDoesNotHoldBackOthers schedules one message the sink
// refuses (as a broker refuses an oversized message) due before twenty good
// ones: the good ones are all handed off, the refused one is postponed with
// its refusals counted, and once the sink takes it, it is handed off too,
// without the scheduler's bookkeeping in its metadata.
func TestRefusedMessageDoesNotHoldBackOthers(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	ctx := context.Background()
	var (
		refuse    atomic.Bool
		mu        sync.Mutex
		delivered = map[int]message.Metadata{}
		refusals  atomic.Int64
	)
	refuse.Store(true)
	sink := scheduler.SinkFunc(func(ctx context.Context, tx store.Executor, topic string, msgs ...*message.Message) error {
		for _, m := range msgs {
			if string(m.Payload) == `{"n":0}` && refuse.Load() {
				refusals.Add(1)
				return errors.New("message too large for the broker")
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			var n int
			switch string(m.Payload) {
			case `{"n":0}`:
				n = 0
			default:
				n = len(delivered) + 1000 // any key other than 0
			}
			delivered[n] = m.Metadata
		}
		return nil
	})
	s := newScheduler(t, pool, sink, "", scheduler.WithPollInterval(200*time.Millisecond))
	now := time.Now()
	poisonIDs, err := s.ScheduleWith(ctx, scheduler.Exec(s), now.Add(-time.Second), reminder{N: 0})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 20; i++ {
		if _, err := s.ScheduleWith(ctx, scheduler.Exec(s), now, reminder{N: i}); err != nil {
			t.Fatal(err)
		}
	}
	run(t, s)

	count := func() int { mu.Lock(); defer mu.Unlock(); return len(delivered) }
	testenv.WaitFor(t, 10*time.Second, "the 20 good messages to be handed off", func() bool { return count() == 20 })
	if n, err := s.Count(ctx); err != nil || n != 1 {
		t.Fatalf("pending = %d, %v; want the refused message only", n, err)
	}
	var refused int
	var lastErr string
	var due time.Time
	if err := pool.QueryRow(ctx, `SELECT (metadata->>'hexeract_schedule_refusals')::int, metadata->>'hexeract_schedule_last_error', due_at FROM `+s.Table()+` WHERE id = $1`, poisonIDs[0]).
		Scan(&refused, &lastErr, &due); err != nil {
		t.Fatal(err)
	}
	if refused < 1 || lastErr == "" || !due.After(now) {
		t.Errorf("refused message: refusals %d, last error %q, due %s (scheduled %s); want it counted and postponed", refused, lastErr, due, now.Add(-time.Second))
	}

	pending, err := s.List(ctx, "", 10)
	if err != nil || len(pending) != 1 || pending[0].Refusals < 1 || !strings.Contains(pending[0].LastError, "message too large for the broker") {
		t.Errorf("List = %+v, %v; want the refused message with its refusals and last error", pending, err)
	}

	refuse.Store(false)
	testenv.WaitFor(t, 10*time.Second, "the refused message to be handed off once the sink takes it", func() bool { return count() == 21 })
	mu.Lock()
	md := delivered[0]
	mu.Unlock()
	if md.Get("hexeract_schedule_refusals") != "" || md.Get("hexeract_schedule_last_error") != "" || md.Get(router.KeyDueAt) == "" {
		t.Errorf("handed-off metadata %v: want router.KeyDueAt and no refusal bookkeeping", md)
	}
	if md.Get(router.KeyType) != (reminder{}).MessageType() || md.Get(router.KeyMetadataError) != "" {
		t.Errorf("handed-off metadata %v: want the message's own envelope (ce_type %q) kept", md, (reminder{}).MessageType())
	}
	t.Logf("refused %d times before the sink took it", refusals.Load())
}
