package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/sqlite"
	"github.com/hexeract/hexeract/store/storetest"
)

// harness gives each test its own database file.
func harness() storetest.Harness[*sql.Tx] {
	return storetest.Harness[*sql.Tx]{
		URL: func(t testing.TB) string {
			return "sqlite://" + filepath.Join(t.TempDir(), "test.db")
		},
		Open: func(t testing.TB, url string) store.Driver[*sql.Tx] {
			t.Helper()
			d, err := sqlite.Open(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = d.Close() })
			return d
		},
		Exec: func(ctx context.Context, tx *sql.Tx, sql string, args ...any) error {
			_, err := tx.ExecContext(ctx, sql, args...)
			return err
		},
		QueryInt: func(ctx context.Context, tx *sql.Tx, sql string, args ...any) (int64, error) {
			var n int64
			err := tx.QueryRowContext(ctx, sql, args...).Scan(&n)
			return n, err
		},
	}
}

func TestCore(t *testing.T) { storetest.RunCore(t, harness()) }

func TestDSN(t *testing.T) {
	for in, want := range map[string]string{
		"sqlite:///tmp/a.db":   "file:/tmp/a.db?",
		"sqlite://rel/a.db":    "file:rel/a.db?",
		"sqlite:a.db":          "file:a.db?",
		"sqlite::memory:":      "file::memory:?",
		"sqlite:///tmp/a.db?x": "file:/tmp/a.db?",
	} {
		got, _, err := sqlite.DSN(in)
		if err != nil || len(got) < len(want) || got[:len(want)] != want {
			t.Errorf("DSN(%q) = %q, %v; want prefix %q", in, got, err, want)
		}
	}
	if _, _, err := sqlite.DSN("postgres://x"); err == nil {
		t.Error("DSN accepted a postgres URL")
	}
}

func TestMemory(t *testing.T) {
	d, err := sqlite.Open(context.Background(), "sqlite::memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = d.Close() }()
	if _, err := d.DB().Exec("CREATE TABLE m (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := d.DB().QueryRow("SELECT COUNT(*) FROM m").Scan(&n); err != nil {
		t.Fatalf("the in-memory database lost its table between statements: %v", err)
	}
}
