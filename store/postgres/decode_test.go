package postgres

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/store"
)

// TestClaimRowsDecodeLikeScan checks that the claim query's rows take the
// raw decoding path and that it reads what rows.Scan reads.
func TestClaimRowsDecodeLikeScan(t *testing.T) {
	pool := testenv.Postgres(t)
	ctx := context.Background()
	table := "ob_decode_" + testenv.Suffix()
	d := New(pool)
	ot := store.OutboxTable{Table: table}
	ms, err := d.Executor().OutboxMigrations(ot)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Migrate(ctx, ot.Component(), ms); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = pool.Exec(ctx, `DROP TABLE `+table+`, `+table+`_dead, `+table+`_delivered`)
		_, _ = pool.Exec(ctx, `DELETE FROM hexeract_schema_migrations WHERE component = $1`, "outbox:"+table)
	})
	_, err = pool.Exec(ctx, `INSERT INTO `+table+` (id, topic, ordering_key, metadata, payload, attempts, last_error)
VALUES ('a', 't', 'k', '{"x": "y"}', '\x0001ff', 3, 'boom'), ('b', 't2', NULL, '{}', '', 0, NULL)`)
	if err != nil {
		t.Fatal(err)
	}
	q := `SELECT ` + returning + ` FROM ` + outboxNames(ot).table + ` d ORDER BY seq`
	rows, err := pool.Query(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if !binaryLayout(rows.FieldDescriptions()) {
		t.Fatalf("claim rows do not take the raw decoding path: %+v", rows.FieldDescriptions())
	}
	fast, err := scanRows(rows, nil)
	if err != nil {
		t.Fatal(err)
	}
	rows, err = pool.Query(ctx, q, pgx.QueryExecModeSimpleProtocol) // text format: the Scan path
	if err != nil {
		t.Fatal(err)
	}
	slow, err := scanRows(rows, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(fast) != 2 || len(slow) != 2 {
		t.Fatalf("rows %d / %d", len(fast), len(slow))
	}
	for i := range fast {
		f, s := fast[i], slow[i]
		if f.Seq != s.Seq || f.ID != s.ID || f.Topic != s.Topic || f.Metadata != s.Metadata || string(f.Payload) != string(s.Payload) ||
			f.Attempts != s.Attempts || !f.CreatedAt.Equal(s.CreatedAt) || f.Key != s.Key || f.LastError != s.LastError {
			t.Fatalf("row %d: raw %+v, scan %+v", i, f, s)
		}
	}
	if string(fast[0].Payload) != "\x00\x01\xff" || fast[0].Key != "k" || fast[0].LastError != "boom" || fast[0].Attempts != 3 {
		t.Fatalf("row 0 = %+v", fast[0])
	}
}
