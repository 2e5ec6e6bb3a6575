package outbox

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/hexeract/hexeract/internal/testenv"
)

// TestClaimRowsDecodeLikeScan checks that the claim query's rows take the
// raw decoding path and that it reads what rows.Scan reads.
func TestClaimRowsDecodeLikeScan(t *testing.T) {
	pool := testenv.Postgres(t)
	ctx := context.Background()
	table := "ob_decode_" + testenv.Suffix()
	o, err := New(pool, WithTable(table))
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Migrate(ctx); err != nil {
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
	q := `SELECT ` + returning + ` FROM ` + o.t.table + ` d ORDER BY seq`
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
		if f.seq != s.seq || f.id != s.id || f.topic != s.topic || f.metadata != s.metadata || string(f.payload) != string(s.payload) ||
			f.attempts != s.attempts || !f.createdAt.Equal(s.createdAt) || (f.key == nil) != (s.key == nil) || (f.lastError == nil) != (s.lastError == nil) {
			t.Fatalf("row %d: raw %+v, scan %+v", i, f, s)
		}
		if f.key != nil && *f.key != *s.key || f.lastError != nil && *f.lastError != *s.lastError {
			t.Fatalf("row %d: key/error differ", i)
		}
	}
	if string(fast[0].payload) != "\x00\x01\xff" || *fast[0].key != "k" || *fast[0].lastError != "boom" || fast[0].attempts != 3 {
		t.Fatalf("row 0 = %+v", fast[0])
	}
}
