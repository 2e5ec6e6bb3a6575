package outbox_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/outbox"
)

// TestPoisonRowInABatchIsChargedAlone: a broker that refuses one message of
// a batch (too large, say) fails the whole Publish call; the relay then
// publishes the batch one by one, so the poison row alone is charged and
// ends dead while its batch-mates are delivered at once, uncharged.
func TestPoisonRowInABatchIsChargedAlone(t *testing.T) {
	pool, ob, table := newOutbox(t)
	ids := publishN(t, pool, ob, 10, 10)
	poison := ids[4]
	rec := newRecorder()
	rec.fail = func(topic string, msgs []*message.Message) error {
		for _, m := range msgs {
			if m.UUID == poison {
				return errors.New("message too large")
			}
		}
		return nil
	}
	stop := runRelay(t, pool, rec, outbox.WithTable(table), outbox.WithMaxAttempts(2),
		outbox.WithBackoff(20*time.Millisecond, 40*time.Millisecond), outbox.WithPollInterval(10*time.Millisecond))
	waitFor(t, 10*time.Second, "dead poison row", func() bool { return pending(t, ob).Dead == 1 })
	stop()
	if got := rec.distinct(); got != 9 {
		t.Fatalf("delivered %d of the 9 good rows", got)
	}
	dead, err := ob.DeadLetters(context.Background(), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || dead[0].ID != poison {
		t.Fatalf("dead rows = %+v; only the poison row may be dead", dead)
	}
	if st := pending(t, ob); st.Pending != 0 {
		t.Fatalf("rows left pending: %+v", st)
	}
}

// TestOutageChargesTheWholeBatch: when every publish fails (broker down),
// the one-by-one fallback gives up after two failures in a row and the
// whole batch backs off, instead of trying each row against a dead broker.
func TestOutageChargesTheWholeBatch(t *testing.T) {
	pool, ob, table := newOutbox(t)
	publishN(t, pool, ob, 20, 20)
	rec := newRecorder()
	calls := make(chan int, 1000)
	rec.fail = func(topic string, msgs []*message.Message) error {
		calls <- len(msgs)
		return errors.New("connection refused")
	}
	stop := runRelay(t, pool, rec, outbox.WithTable(table), outbox.WithBackoff(time.Hour, 2*time.Hour), outbox.WithPollInterval(10*time.Millisecond))
	waitFor(t, 10*time.Second, "all rows retrying", func() bool { return pending(t, ob).Retrying == 20 })
	stop()
	if n := len(calls); n != 3 {
		t.Fatalf("%d publish calls for one failed batch; want 3 (the batch, then two single messages)", n)
	}
}
