package scheduler_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hexeract/hexeract/store"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/scheduler"
)

// TestScheduleMessagesWithoutMetadata: a Watermill message built as a
// struct literal has nil metadata. It used to be stored as the JSON null,
// which the poller decoded into a nil map and then wrote router.KeyDueAt into: a
// panic in the poller, again on every restart, in every replica, since the
// message stayed scheduled.
func TestScheduleMessagesWithoutMetadata(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	ctx := context.Background()
	var (
		mu  sync.Mutex
		got []*message.Message
	)
	sink := scheduler.SinkFunc(func(_ context.Context, _ store.Executor, _ string, msgs ...*message.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, msgs...)
		return nil
	})
	s := newScheduler(t, pool, sink, "", scheduler.WithPollInterval(100*time.Millisecond))
	msg := &message.Message{UUID: "raw-" + testenv.Suffix(), Payload: []byte("hello")}
	if _, err := s.ScheduleMessagesWith(ctx, scheduler.Exec(s), time.Now(), "raw.topic", msg); err != nil {
		t.Fatal(err)
	}
	run(t, s)
	testenv.WaitFor(t, 5*time.Second, "the message to be handed off", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1
	})
	mu.Lock()
	defer mu.Unlock()
	if got[0].UUID != msg.UUID || string(got[0].Payload) != "hello" || got[0].Metadata.Get(router.KeyDueAt) == "" {
		t.Errorf("handed off %s %q %v; want the message with %s", got[0].UUID, got[0].Payload, got[0].Metadata, router.KeyDueAt)
	}
}
