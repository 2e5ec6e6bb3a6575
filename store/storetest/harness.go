// Package storetest is the conformance suite every storage driver passes:
// the same test functions, run by each driver's tests against its database
// (store/postgres, store/mysql and store/sqlite call them). A third-party
// driver runs them too, with a Harness of its own.
//
// Each Run function takes a [Harness], which gives every test a fresh,
// empty namespace of the database (a PostgreSQL schema, a MariaDB database,
// an SQLite file) so tests run in parallel without seeing each other.
package storetest

import (
	"context"
	"testing"

	"github.com/hexeract/hexeract/store"
)

// Harness tells the suite how to reach one driver's database.
type Harness[TTx any] struct {
	// URL returns the URL of a fresh, empty namespace of the database for
	// the test (dropped when it ends). Tests that simulate several
	// processes open several drivers on one URL.
	URL func(t testing.TB) string
	// Open opens a driver on url; the harness closes it when the test ends.
	Open func(t testing.TB, url string) store.Driver[TTx]
	// KillConnections ends every server connection to url's namespace, as
	// a crashed network or a restarted server would, and returns how many
	// it ended. Nil for an embedded database (SQLite), whose fault tests
	// kill a process instead.
	KillConnections func(t testing.TB, url string) int
	// Exec runs one SQL statement of the test's own (a business row) in
	// tx. Placeholders are the driver's ($1 for PostgreSQL, ? otherwise).
	Exec func(ctx context.Context, tx TTx, sql string, args ...any) error
	// QueryInt runs a query of the test's own returning one integer in tx.
	QueryInt func(ctx context.Context, tx TTx, sql string, args ...any) (int64, error)
}

// OpenFresh returns a driver on a fresh namespace.
func (h Harness[TTx]) OpenFresh(t testing.TB) store.Driver[TTx] {
	t.Helper()
	return h.Open(t, h.URL(t))
}
