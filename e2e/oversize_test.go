package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hexeract/hexeract/adapters"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/store/postgres"
)

// TestOversizeThroughOutbox sends a message over the broker's size limit
// through the outbox on NATS (1 MB max_payload): the relay's publish fails,
// is retried, and the row ends in the outbox's dead table with the broker's
// error, while a normal message committed after it is delivered. (It found
// the relay charging a failed publish to every row of the call, which sent
// the normal message to the dead table too; fixed in the outbox.)
func TestOversizeThroughOutbox(t *testing.T) {
	servicesSteady(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool := testenv.Postgres(t)
	prefix := "e2e_big_" + testenv.Suffix()
	table := prefix + "_outbox"
	topicOf := func(typ string) string { return prefix + "." + typ }
	ob, err := outbox.New(postgres.New(pool), outbox.WithTable(table), outbox.WithTopicFunc(topicOf))
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	if err := ob.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+table+`, `+table+`_dead, `+table+`_delivered CASCADE`)
		_, _ = pool.Exec(context.Background(), `DELETE FROM hexeract_schema_migrations WHERE component = $1`, "outbox:"+table)
	})
	tr, err := adapters.Open(ctx, natsURL(t), adapters.WithGroup(prefix))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	topic := topicOf(Good{}.MessageType())
	got, err := tr.Subscriber.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ob.Publish(ctx, tx, bigGood(strings.Repeat("x", 2<<20))); err != nil {
		t.Fatal(err)
	}
	okIDs, err := ob.Publish(ctx, tx, Good{N: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	relay, err := outbox.NewRelay(postgres.New(pool), tr.Publisher, outbox.WithTable(table), outbox.WithMaxAttempts(3),
		outbox.WithBackoff(50*time.Millisecond, 100*time.Millisecond), outbox.WithPollInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- relay.Run(rctx) }()
	defer func() { stop(); <-done }()

	waitUntil(t, 30*time.Second, func() bool {
		st, err := ob.Stats(ctx)
		return err == nil && st.Dead > 0 && st.Pending == 0 && st.Retrying == 0
	}, func() string { return "the oversize row did not reach the dead table" })
	dead, err := ob.DeadLetters(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dead {
		if d.ID == okIDs[0] {
			t.Errorf("the normal message %s, committed in the same transaction as the oversize one, was moved to the dead table with it "+
				"(attempts %d, last error %q): a failed publish counts as a failed attempt of every row published in the same call, "+
				"so one poison row kills its batch-mates", d.ID, d.Attempts, d.LastError)
		}
	}
	select {
	case m := <-got:
		m.Ack()
		if m.UUID != okIDs[0] {
			t.Errorf("delivered %s, want the normal message %s", m.UUID, okIDs[0])
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the normal message was not delivered")
	}
	if len(dead) == 0 || dead[0].Attempts != 3 || !strings.Contains(dead[0].LastError, "maximum payload") {
		t.Fatalf("dead rows %+v: want the oversize row, 3 attempts, the broker's size error", dead)
	}
	t.Logf("oversize message dead after %d attempts: %s", dead[0].Attempts, dead[0].LastError)
}

// bigGood is a Good whose JSON carries pad.
type bigGoodMsg struct {
	N   int    `json:"n"`
	Pad string `json:"pad"`
}

func (bigGoodMsg) MessageType() string { return Good{}.MessageType() }

func bigGood(pad string) bigGoodMsg { return bigGoodMsg{N: 1, Pad: pad} }
