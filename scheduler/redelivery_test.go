package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hexeract/hexeract/store/postgres"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hexeract/hexeract/adapters/gochannel"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/scheduler"
	"github.com/hexeract/hexeract/store"
)

// newOutbox creates an outbox table for the test and, when pub is not nil,
// runs its relay to pub.
func newOutbox(t testing.TB, pool *pgxpool.Pool, pub message.Publisher) *outbox.Outbox[pgx.Tx] {
	t.Helper()
	ctx := context.Background()
	table := "sched_outbox_" + testenv.Suffix()
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+table+`, `+table+`_dead, `+table+`_delivered`)
		_, _ = pool.Exec(context.Background(), `DELETE FROM `+store.MigrationTable+` WHERE component = $1`, "outbox:"+table)
	})
	ob, err := outbox.New(postgres.New(pool), outbox.WithTable(table))
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if pub == nil {
		return ob
	}
	relay, err := outbox.NewRelay(postgres.New(pool), pub, outbox.WithTable(table), outbox.WithPollInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = relay.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return ob
}

// TestRedeliveryWalksDelaysThenDeadLetters runs the whole path on real
// PostgreSQL: handler failure → immediate retries (middleware.Retry) →
// rescheduled in the scheduler table → handed to the outbox → relayed to the
// bus → handled again, three times, with a scheduler restart in between, and
// finally middleware.DeadLetter with the full history.
func TestRedeliveryWalksDelaysThenDeadLetters(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	ctx := context.Background()
	logger := watermill.NopLogger{}
	bus := gochannel.New(gochannel.Config{Buffer: 16}, logger)
	t.Cleanup(func() { _ = bus.Close() })
	ob := newOutbox(t, pool, bus)

	table := "sched_" + testenv.Suffix()
	t.Cleanup(func() { dropTables(pool, table) })
	first := newScheduler(t, pool, ob, table)
	stopFirst := run(t, first)

	delays := []time.Duration{300 * time.Millisecond, 600 * time.Millisecond, 900 * time.Millisecond}
	redelivery, err := first.Redelivery(scheduler.RedeliveryConfig{Delays: delays})
	if err != nil {
		t.Fatal(err)
	}
	retry, err := middleware.Retry(middleware.RetryPolicy{MaxAttempts: 2, InitialInterval: 10 * time.Millisecond, NoJitter: true})
	if err != nil {
		t.Fatal(err)
	}
	deadLetter, err := middleware.DeadLetter(bus, middleware.DeadLetterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := message.NewRouter(message.RouterConfig{}, logger)
	if err != nil {
		t.Fatal(err)
	}
	r.AddMiddleware(deadLetter, redelivery, retry)
	var calls atomic.Int32
	r.AddConsumerHandler("always-fails", "test.reminder", bus, func(msg *message.Message) error {
		n := calls.Add(1)
		return fmt.Errorf("payment provider down (call %d)", n)
	})
	dead, err := bus.Subscribe(ctx, "test.reminder.dlq")
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancelRouter := context.WithCancel(ctx)
	t.Cleanup(cancelRouter)
	go func() { _ = r.Run(rctx) }()
	<-r.Running()

	orig, err := router.NewMessage(ctx, reminder{N: 7}, router.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish("test.reminder", orig); err != nil {
		t.Fatal(err)
	}

	// After the first round, the redelivery waits in PostgreSQL: restart
	// the scheduler (a new instance on the same table) and it still comes.
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := first.Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the failed message was not rescheduled in the scheduler table")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopFirst()
	second := newScheduler(t, pool, ob, table)
	run(t, second)

	var dl *message.Message
	select {
	case dl = <-dead:
		dl.Ack()
	case <-time.After(15 * time.Second):
		t.Fatalf("no dead letter after 15s; handler called %d times", calls.Load())
	}
	if got := calls.Load(); got != 8 {
		t.Fatalf("handler called %d times, want 8 (4 rounds × 2 immediate attempts)", got)
	}
	if dl.UUID != orig.UUID || string(dl.Payload) != string(orig.Payload) || dl.Metadata.Get(router.KeyID) != orig.Metadata.Get(router.KeyID) {
		t.Fatalf("dead letter %s is not the original message %s", dl.UUID, orig.UUID)
	}
	history, err := scheduler.FaultHistory(dl)
	if err != nil {
		t.Fatal(err)
	}
	if len(history) != 4 {
		t.Fatalf("fault history has %d rounds, want 4: %+v", len(history), history)
	}
	for i, f := range history {
		if f.Round != i+1 || f.Attempts != 2 || f.Handler != "always-fails" || f.Topic != "test.reminder" || f.Error == "" {
			t.Errorf("round %d: %+v", i+1, f)
		}
		if i > 0 {
			if gap := f.At.Sub(history[i-1].At); gap < delays[i-1] {
				t.Errorf("redelivery %d came %s after the failure, before its delay %s", i, gap, delays[i-1])
			}
		}
	}
	if dl.Metadata.Get(router.KeyRedeliveries) != strconv.Itoa(len(delays)) {
		t.Errorf("%s = %q, want %d", router.KeyRedeliveries, dl.Metadata.Get(router.KeyRedeliveries), len(delays))
	}
	if dl.Metadata.Get(router.KeyFaultHandler) != "always-fails" || dl.Metadata.Get(router.KeyFaultError) == "" {
		t.Errorf("dead letter lacks middleware.DeadLetter's fault metadata: %v", dl.Metadata)
	}
	if n, _ := second.Count(ctx); n != 0 {
		t.Errorf("%d messages still scheduled after the dead letter", n)
	}
}

func TestRedeliveryPermanentErrorSkipsDelays(t *testing.T) {
	pool := testenv.Postgres(t)
	s := newScheduler(t, pool, newTableSink(t, pool), "")
	mw, err := s.Redelivery(scheduler.RedeliveryConfig{
		Delays: []time.Duration{time.Minute},
		Topic:  func(*message.Message) string { return "billing.charge" },
	})
	if err != nil {
		t.Fatal(err)
	}
	cause := router.Permanent(errors.New("invalid card number"))
	h := mw(func(*message.Message) ([]*message.Message, error) { return nil, cause })
	msg := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
	if _, err := h(msg); !errors.Is(err, cause) {
		t.Fatalf("permanent error not returned for the dead-letter middleware: %v", err)
	}
	if n, _ := s.Count(context.Background()); n != 0 {
		t.Fatalf("permanent failure was rescheduled (%d pending)", n)
	}
	history, err := scheduler.FaultHistory(msg)
	if err != nil || len(history) != 1 || history[0].Topic != "billing.charge" {
		t.Fatalf("history = %+v, %v", history, err)
	}
}

// The default delays are not shared mutable state: changing the slice one
// caller got changes no other caller's default.
func TestDefaultRedeliveryDelaysIsACopy(t *testing.T) {
	d := scheduler.DefaultRedeliveryDelays()
	d[0] = 0
	if got := scheduler.DefaultRedeliveryDelays(); got[0] != 10*time.Second || len(got) != 3 {
		t.Fatalf("DefaultRedeliveryDelays() = %v after a caller changed its copy", got)
	}
}
