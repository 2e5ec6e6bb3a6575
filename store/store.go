// Package store is Hexeract's storage seam: the interfaces every stateful
// component (the outbox and its relay, the inbox, the saga store, the
// scheduler, the operations commands) uses to reach a database, whatever
// the database is.
//
// A driver implements the seam for one database and owns its SQL, its
// migrations and its notification mechanism:
//
//   - [github.com/hexeract/hexeract/store/postgres]: PostgreSQL through pgx/v5
//     (transactions are pgx.Tx);
//   - [github.com/hexeract/hexeract/store/mysql]: MySQL 8 and MariaDB 10.6+
//     through go-sql-driver/mysql (transactions are *sql.Tx);
//   - [github.com/hexeract/hexeract/store/sqlite]: embedded SQLite through
//     modernc.org/sqlite, pure Go (transactions are *sql.Tx).
//
// The split follows River's (riverqueue/river): components are generic over
// the driver's transaction type TTx, so the caller's business transaction
// stays typed ([Driver.UnwrapTx] turns it into an [ExecutorTx]), while
// everything that does not touch the caller's transaction (relays, pollers,
// the CLI) works on the untyped [Store].
//
// One shared conformance suite, [github.com/hexeract/hexeract/store/storetest],
// runs the same tests against every driver.
package store

import (
	"context"
	"errors"
	"time"
)

// Dialect names the database family a driver speaks.
type Dialect string

// The dialects of Hexeract's drivers.
const (
	Postgres Dialect = "postgres"
	MySQL    Dialect = "mysql"
	SQLite   Dialect = "sqlite"
)

// Store is a database reached through one driver, without the driver's
// transaction type. Relays, schedulers, the dead-letter store and the CLI
// need no more than this.
type Store interface {
	// Dialect names the driver's database family.
	Dialect() Dialect
	// Executor runs operations on the driver's connection pool, each in its
	// own implicit transaction unless the operation says otherwise.
	Executor() Executor
	// Begin starts a transaction: operations on the returned ExecutorTx
	// commit or roll back together.
	Begin(ctx context.Context) (ExecutorTx, error)
	// Notifier wakes waiting workers (a relay, a scheduler poller) when
	// rows they care about were committed.
	Notifier() Notifier
	// Migrate applies the pending migrations of one component, in version
	// order, under a lock that every migrator of this database takes, so
	// concurrent migrators apply each migration exactly once. It returns
	// the versions it applied (none when the schema is current).
	Migrate(ctx context.Context, component string, migrations []Migration) ([]int, error)
	// MigrationStatus reports, for each migration of a component, whether
	// and when it was applied. It changes nothing in the database (it does
	// not create the version table).
	MigrationStatus(ctx context.Context, component string, migrations []Migration) ([]MigrationStatus, error)
	// Close releases what the driver opened itself (a pool it built in
	// Open). A pool the caller handed to the driver stays open.
	Close() error
}

// Driver is a [Store] that also knows its transaction type TTx (pgx.Tx for
// PostgreSQL, *sql.Tx for the database/sql drivers), so components can write
// inside the caller's business transaction without an `any`.
type Driver[TTx any] interface {
	Store
	// UnwrapTx returns an ExecutorTx whose operations run inside tx. The
	// caller commits or rolls back tx; Commit and Rollback on the returned
	// value return [ErrBorrowedTx] and leave tx alone.
	UnwrapTx(tx TTx) ExecutorTx
	// TxOf returns the driver transaction behind an ExecutorTx that this
	// driver returned from Begin or UnwrapTx, so code given an ExecutorTx
	// (a saga handler, an inbox handler) can run its own SQL in it.
	TxOf(ex Executor) (TTx, bool)
	// InTx runs fn in a new transaction and commits it when fn returns nil;
	// it rolls back when fn returns an error or panics.
	InTx(ctx context.Context, fn func(ctx context.Context, tx TTx) error) error
}

// ErrBorrowedTx is returned by Commit and Rollback of an ExecutorTx made by
// [Driver.UnwrapTx]: the transaction belongs to the caller.
var ErrBorrowedTx = errors.New("store: the transaction belongs to the caller, who commits or rolls it back")

// Executor runs Hexeract's storage operations. It is the union of one
// interface per component, each defined in this package next to the types
// it uses; every driver implements all of them.
type Executor interface {
	OutboxExecutor
	InboxExecutor
	SagaExecutor
	SchedulerExecutor
	DeadLetterExecutor
}

// ExecutorTx is an [Executor] inside one transaction.
type ExecutorTx interface {
	Executor
	// Commit commits the transaction.
	Commit(ctx context.Context) error
	// Rollback rolls the transaction back; after Commit it is a no-op.
	Rollback(ctx context.Context) error
}

// Notifier carries "something was committed" signals on named channels.
// PostgreSQL uses LISTEN/NOTIFY, which crosses processes; MySQL, MariaDB and
// SQLite have no such thing, so their notifier reaches listeners of the same
// driver value in this process only, and the listeners poll for the rest.
type Notifier interface {
	// Notify wakes the listeners of channel. It does not wait for them.
	Notify(ctx context.Context, channel string) error
	// Listen calls wake on each notification of channel until ctx ends, and
	// returns nil then. It calls ready each time it is (again) listening,
	// so the caller can poll once to catch what was committed while it was
	// not. A lost connection is retried with backoff; the caller keeps
	// polling meanwhile.
	Listen(ctx context.Context, channel string, ready, wake func()) error
	// CrossProcess reports whether notifications reach other processes.
	CrossProcess() bool
}

// Migration is one versioned schema step of a component. SQL holds one or
// more statements in the driver's dialect, separated by a line holding only
// "-- +step" when the driver cannot run several statements at once.
type Migration struct {
	Version int    // 1, 2, 3 ... strictly increasing within a component
	Name    string // short description, for status output
	SQL     string
}

// MigrationStatus is the state of one migration of a component.
type MigrationStatus struct {
	Component string
	Version   int
	Name      string
	AppliedAt time.Time // zero when pending
}

// Pending reports whether the migration has not been applied.
func (s MigrationStatus) Pending() bool { return s.AppliedAt.IsZero() }

// MigrationTable records applied migrations, on every driver.
const MigrationTable = "hexeract_schema_migrations"
