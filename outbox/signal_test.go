package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/outbox"
)

// Outbox.Signal wakes the relays built from that Outbox (Outbox.NewRelay)
// in-process, and only those: the Outbox holds its relays, there is no
// process-wide registry by table through which a relay built elsewhere
// (here: one on the same table, not listening, polling hourly) is woken.
func TestSignalWakesOnlyTheOutboxsOwnRelays(t *testing.T) {
	pool, ob, table := newOutbox(t, outbox.WithoutNotify())
	mine, other := newRecorder(), newRecorder()
	r, err := ob.NewRelay(mine, outbox.WithoutListen(), outbox.WithPollInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ob.NewRelay(mine, outbox.WithTable(table+"_x")); err == nil {
		t.Error("Outbox.NewRelay with another table should be refused")
	}
	testenv.Run(t, "own relay", 15*time.Second, r.Run)
	runRelay(t, pool, other, outbox.WithTable(table), outbox.WithoutListen(), outbox.WithPollInterval(time.Hour))
	time.Sleep(500 * time.Millisecond) // both relays did their first poll and sleep

	const n = 20
	for i := range n {
		if err := ob.InTx(context.Background(), func(_ context.Context, tx pgx.Tx) error {
			_, err := ob.Publish(context.Background(), tx, UserRegistered{UserID: string(rune('a' + i))})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "the Outbox's own relay woken by Signal", func() bool { return mine.distinct() == n })
	if got := other.distinct(); got != 0 {
		t.Errorf("a relay not built from the Outbox was woken by its Signal and delivered %d messages", got)
	}
}
