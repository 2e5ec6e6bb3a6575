package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/postgres"
	"github.com/hexeract/hexeract/store/storetest"
)

// harness gives each test its own schema (search_path) and application
// name, so KillConnections ends this test's connections only.
func harness() storetest.Harness[pgx.Tx] {
	return storetest.Harness[pgx.Tx]{
		URL: func(t testing.TB) string {
			t.Helper()
			admin := testenv.Postgres(t)
			schema := "hx_" + testenv.Suffix()
			if _, err := admin.Exec(context.Background(), "CREATE SCHEMA "+schema); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_, _ = admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			})
			return testenv.PostgresURL(t) + "&search_path=" + schema + "&application_name=" + schema
		},
		Open: func(t testing.TB, url string) store.Driver[pgx.Tx] {
			t.Helper()
			d, err := postgres.Open(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = d.Close() })
			return d
		},
		KillConnections: func(t testing.TB, url string) int {
			t.Helper()
			cfg, err := pgx.ParseConfig(url)
			if err != nil {
				t.Fatal(err)
			}
			var n int
			err = testenv.Postgres(t).QueryRow(context.Background(),
				`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()`,
				cfg.RuntimeParams["application_name"]).Scan(&n)
			if err != nil {
				t.Fatal(err)
			}
			return n
		},
		Exec: func(ctx context.Context, tx pgx.Tx, sql string, args ...any) error {
			_, err := tx.Exec(ctx, sql, args...)
			return err
		},
		QueryInt: func(ctx context.Context, tx pgx.Tx, sql string, args ...any) (int64, error) {
			var n int64
			err := tx.QueryRow(ctx, sql, args...).Scan(&n)
			return n, err
		},
	}
}

func TestCore(t *testing.T) { storetest.RunCore(t, harness()) }
