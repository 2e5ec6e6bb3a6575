package outbox_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Two rows of one ordering key go dead: "first" (seq 1) came from a
// transaction that started later but took the key lock first, so its
// created_at is later than that of "second" (seq 2). Replay must keep
// their seq order, which is the key's delivery order, not created_at.
func TestReplayDeadKeepsSeqOrder(t *testing.T) {
	pool, ob, table := newOutbox(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO `+table+`_dead (seq, id, topic, ordering_key, metadata, payload, attempts, created_at) VALUES
  (1, 'first',  'tp', 'k', '{}', '', 10, now()),
  (2, 'second', 'tp', 'k', '{}', '', 10, now() - interval '1 minute'),
  (3, 'third',  'tp', 'k', '{}', '', 10, now() - interval '2 minutes')`)
	if err != nil {
		t.Fatal(err)
	}
	n, err := ob.ReplayDead(ctx, nil, 0, nil)
	if err != nil || n != 3 {
		t.Fatalf("replay = %d, %v", n, err)
	}
	rows, _ := pool.Query(ctx, `SELECT id FROM `+table+` ORDER BY seq`)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"first", "second", "third"}; !slices.Equal(got, want) {
		t.Fatalf("replayed rows in seq order %v, want %v", got, want)
	}
}

// A dead row whose metadata holds non-string values (a row written by hand,
// which the relay publishes with those values as JSON text) must not make
// DeadLetters fail for the whole page.
func TestDeadLettersListsRowsWithNonStringMetadata(t *testing.T) {
	pool, ob, table := newOutbox(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO `+table+`_dead (seq, id, topic, metadata, payload, attempts, created_at) VALUES
  (1, 'ok', 'tp', '{"a": "x"}', '', 10, now()),
  (2, 'hand', 'tp', '{"a": "x", "n": 1, "o": {"b": true}}', '', 10, now())`)
	if err != nil {
		t.Fatal(err)
	}
	dead, err := ob.DeadLetters(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 2 || dead[1].Metadata["a"] != "x" || dead[1].Metadata["n"] != "1" || dead[1].Metadata["o"] != `{"b":true}` {
		t.Fatalf("dead rows = %+v", dead)
	}
}

// A row replayed from the dead table has been pending since the replay:
// Stats must not measure its age from when it was first written.
func TestReplayedRowAgeStartsAtReplay(t *testing.T) {
	pool, ob, table := newOutbox(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO `+table+`_dead (seq, id, topic, metadata, payload, attempts, created_at) VALUES
  (1, 'old', 'tp', '{}', '', 10, now() - interval '1 hour')`)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := ob.ReplayDead(ctx, nil, 0, nil); err != nil || n != 1 {
		t.Fatalf("replay = %d, %v", n, err)
	}
	st, err := ob.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != 1 || st.OldestPendingAge > time.Minute {
		t.Fatalf("after replay: %d pending, oldest %v (want the time since the replay)", st.Pending, st.OldestPendingAge)
	}
}
