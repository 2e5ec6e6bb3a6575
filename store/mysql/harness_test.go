package mysql_test

import (
	"context"
	"database/sql"
	"net/url"
	"testing"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/mysql"
	"github.com/hexeract/hexeract/store/storetest"
)

// admin returns a driver on the test server's default database.
func admin(t testing.TB) *mysql.Driver {
	t.Helper()
	d, err := mysql.Open(context.Background(), testenv.MySQLURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// harness gives each test its own database, so KillConnections ends this
// test's connections only.
func harness() storetest.Harness[*sql.Tx] {
	return storetest.Harness[*sql.Tx]{
		URL: func(t testing.TB) string {
			t.Helper()
			a := admin(t)
			name := "hx_" + testenv.Suffix()
			if _, err := a.DB().Exec("CREATE DATABASE " + name); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _, _ = a.DB().Exec("DROP DATABASE IF EXISTS " + name) })
			u, err := url.Parse(testenv.MySQLURL(t))
			if err != nil {
				t.Fatal(err)
			}
			u.Path = "/" + name
			return u.String()
		},
		Open: func(t testing.TB, url string) store.Driver[*sql.Tx] {
			t.Helper()
			d, err := mysql.Open(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = d.Close() })
			return d
		},
		KillConnections: func(t testing.TB, rawURL string) int {
			t.Helper()
			u, err := url.Parse(rawURL)
			if err != nil {
				t.Fatal(err)
			}
			a := admin(t)
			rows, err := a.DB().Query(`SELECT id FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()`, u.Path[1:])
			if err != nil {
				t.Fatal(err)
			}
			var ids []int64
			for rows.Next() {
				var id int64
				if err := rows.Scan(&id); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
			}
			_ = rows.Close()
			n := 0
			for _, id := range ids {
				if _, err := a.DB().Exec("KILL ?", id); err == nil {
					n++
				}
			}
			return n
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
