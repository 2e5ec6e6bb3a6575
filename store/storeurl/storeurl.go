// Package storeurl opens a store from a URL, whatever its driver:
// postgres:// (or postgresql://), mysql:// (or mariadb://), and sqlite: in
// the forms sqlite:///absolute/path.db, sqlite://relative/path.db and
// sqlite::memory:. The CLI's --database-url and HEXERACT_DATABASE_URL go
// through it. Code that needs the driver's transaction type opens the
// driver package instead (postgres.Open, mysql.Open, sqlite.Open).
package storeurl

import (
	"context"
	"fmt"
	"strings"

	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/mysql"
	"github.com/hexeract/hexeract/store/postgres"
	"github.com/hexeract/hexeract/store/sqlite"
)

// Open opens the store at url with the driver its scheme names. Errors
// never hold the URL's password.
func Open(ctx context.Context, url string) (store.Store, error) {
	switch Dialect(url) {
	case store.Postgres:
		return postgres.Open(ctx, url)
	case store.MySQL:
		return mysql.Open(ctx, url)
	case store.SQLite:
		return sqlite.Open(ctx, url)
	}
	return nil, fmt.Errorf("storeurl: %s: unknown scheme (use postgres://, mysql:// or sqlite:///path.db)", store.RedactURL(url))
}

// Dialect returns the dialect url's scheme names, or "" for none.
func Dialect(url string) store.Dialect {
	switch {
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		return store.Postgres
	case strings.HasPrefix(url, "mysql://"), strings.HasPrefix(url, "mariadb://"):
		return store.MySQL
	case strings.HasPrefix(url, "sqlite:"):
		return store.SQLite
	}
	return ""
}
