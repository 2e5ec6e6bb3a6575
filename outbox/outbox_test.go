package outbox_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"

	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/router"
)

func TestCommitPublishesExactlyCommittedRollbackNone(t *testing.T) {
	pool, ob, table := newOutbox(t)
	ctx := context.Background()
	rec := newRecorder()
	runRelay(t, pool, rec, outbox.WithTable(table), outbox.WithPollInterval(50*time.Millisecond))

	var committed []string
	for i := range 20 {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := ob.Publish(ctx, tx, UserRegistered{UserID: "u", Email: "e"}, UserRegistered{UserID: "v"})
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			committed = append(committed, ids...)
		} else if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "committed messages", func() bool { return rec.distinct() >= len(committed) })
	time.Sleep(200 * time.Millisecond) // give a phantom message the chance to show up
	var got []string
	for _, m := range rec.messages() {
		got = append(got, m.UUID)
		if m.Metadata.Get(router.KeyType) != "users.registered" {
			t.Fatalf("ce_type = %q", m.Metadata.Get(router.KeyType))
		}
		var v UserRegistered
		if err := json.Unmarshal(m.Payload, &v); err != nil || v.UserID == "" {
			t.Fatalf("payload %s: %v", m.Payload, err)
		}
	}
	slices.Sort(got)
	slices.Sort(committed)
	if !slices.Equal(got, committed) {
		t.Fatalf("delivered %d messages, committed %d; sets differ", len(got), len(committed))
	}
	if st := pending(t, ob); st.Pending != 0 {
		t.Fatalf("rows left in the outbox: %+v", st)
	}
}

func TestPublishMessagesKeepsIDAndMetadata(t *testing.T) {
	pool, ob, table := newOutbox(t)
	ctx := context.Background()
	wm, err := router.NewMessage(ctx, UserRegistered{UserID: "x"}, router.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wm.Metadata.Set("custom", "yes")
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return ob.PublishMessages(ctx, tx, "raw.topic", wm) }); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	runRelay(t, pool, rec, outbox.WithTable(table))
	waitFor(t, 5*time.Second, "delivery", func() bool { return rec.distinct() == 1 })
	got := rec.messages()[0]
	if got.UUID != wm.UUID || got.Metadata.Get("custom") != "yes" || string(got.Payload) != string(wm.Payload) {
		t.Fatalf("got %s %v %s", got.UUID, got.Metadata, got.Payload)
	}
	if ids := rec.byTopic["raw.topic"]; len(ids) != 1 {
		t.Fatalf("topics: %v", rec.byTopic)
	}
}

func TestLargeBatchUsesCopy(t *testing.T) {
	pool, ob, _ := newOutbox(t)
	ctx := context.Background()
	msgs := make([]router.Message, 2000)
	for i := range msgs {
		msgs[i] = AccountEvent{Account: "a", N: i}
	}
	var ids []string
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		ids, err = ob.Publish(ctx, tx, msgs...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2000 {
		t.Fatalf("ids = %d", len(ids))
	}
	if st := pending(t, ob); st.Pending != 2000 {
		t.Fatalf("pending = %d", st.Pending)
	}
}

// Metadata that PostgreSQL's jsonb cannot hold (a NUL byte) or that JSON
// would silently change (invalid UTF-8) is refused by Publish with an
// error naming the key, before any SQL runs: the caller's transaction is
// not aborted and can go on.
func TestUnstorableMetadataRefusedBeforeSQL(t *testing.T) {
	pool, ob, table := newOutbox(t)
	ctx := context.Background()
	for name, md := range map[string]message.Metadata{
		"nul value":    {"note": "a\x00b"},
		"nul key":      {"no\x00te": "ab"},
		"invalid utf8": {"note": "caf\xe9"},
	} {
		t.Run(name, func(t *testing.T) {
			tx, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback(ctx) }()
			m := message.NewMessage("id-1", []byte("{}"))
			m.Metadata = md
			err = ob.PublishMessages(ctx, tx, "tp", m)
			if err == nil || !strings.Contains(err.Error(), "metadata") || !strings.Contains(err.Error(), "id-1") {
				t.Fatalf("PublishMessages = %v, want an error about the metadata of id-1", err)
			}
			// The transaction was not aborted by a failed statement.
			if _, err := ob.Publish(ctx, tx, UserRegistered{UserID: "u"}); err != nil {
				t.Fatalf("transaction unusable after the refusal: %v", err)
			}
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil || n != 1 {
				t.Fatalf("rows = %d, %v", n, err)
			}
		})
	}
}
