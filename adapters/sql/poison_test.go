package sql_test

import (
	"context"
	"testing"
	"time"

	"github.com/hexeract/hexeract/adapters/internal/suite"
	hsql "github.com/hexeract/hexeract/adapters/sql"
	"github.com/hexeract/hexeract/internal/testenv"
)

// TestPoisonRows inserts rows straight into the topic's table with pgx,
// interleaved with good ones: metadata objects with values that are not
// strings (handled, values in text form) and metadata that is not a JSON
// object (dead-lettered at once with a fault naming the cause). Every good
// row is handled, including those after a bad one in the same batch, and
// the group's offset passes the last row.
func TestPoisonRows(t *testing.T) {
	pool := testenv.Postgres(t)
	ctx := context.Background()
	prefix := "hexeract_poison_" + testenv.Suffix() + "_"
	topic := "poison"
	cfg := hsql.Config{Pool: pool, Group: "poison", TablePrefix: prefix, PollInterval: 20 * time.Millisecond}
	pub, sub, err := hsql.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	defer sub.Close()
	t.Cleanup(func() {
		for _, tp := range []string{topic, topic + ".dlq"} {
			_, _ = pool.Exec(context.Background(), "DROP TABLE IF EXISTS "+cfg.MessagesTable(tp)+", "+cfg.OffsetsTable(tp))
		}
	})
	rows := []struct{ uuid, payload, metadata string }{
		{"g1", "good-1", `{"ce_type":"poison.good"}`},
		{"g-nested", "good-nested", `{"x":{"nested":[true]},"n":null}`},
		{"b-number", "bad-number", `42`},
		{"g-int", "good-int", `{"ce_type":42,"f":1.50}`},
		{"b-string", "bad-string", `"s"`},
		{"b-array", "bad-array", `[1,2,3]`},
		{"g-null", "good-null", `null`},
		{"", "good-no-uuid", `{"ce_id":"evt-1"}`},
		{"g2", "good-2", `{}`},
	}
	suite.Poison(t, pub, sub, sub, topic, func(t *testing.T) {
		// One transaction, so the bad rows share a batch with good ones.
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }() // after Commit a no-op (ErrTxClosed); on a t.Fatal path it releases the connection
		for _, r := range rows {
			_, err := tx.Exec(ctx, "INSERT INTO "+cfg.MessagesTable(topic)+" (uuid, payload, metadata, transaction_id) VALUES ($1, $2, $3::json, pg_current_xact_id())",
				r.uuid, []byte(r.payload), r.metadata)
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}, suite.PoisonWant{
		Good: map[string]map[string]string{
			"good-1":       {"ce_type": suite.GoodType},
			"good-nested":  {"x": `{"nested":[true]}`, "n": ""},
			"good-int":     {"ce_type": "42", "f": "1.50"},
			"good-null":    nil,
			"good-no-uuid": {"ce_id": "evt-1"},
			"good-2":       nil,
		},
		Bad: map[string]string{
			"bad-number": "not a JSON object",
			"bad-string": "not a JSON object",
			"bad-array":  "not a JSON object",
		},
	})
}
