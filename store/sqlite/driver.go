// Package sqlite is Hexeract's embedded SQLite storage driver, on
// database/sql with modernc.org/sqlite (pure Go, no cgo). It is the
// default store of the examples and the quickstart: no server to run.
//
// Transactions are *sql.Tx. The database runs in WAL mode with a busy
// timeout, and every transaction begins IMMEDIATE: SQLite has one writer
// at a time, and taking the write lock at BEGIN (rather than at the first
// write) means a transaction waits for it instead of failing half-way.
// There is no SKIP LOCKED: the outbox relay and the scheduler claim rows
// with a lease (UPDATE ... RETURNING), so several relays and processes on
// one file stay correct. There is no LISTEN/NOTIFY: producers wake relays
// of the same Driver value at once; other processes are seen by polling.
package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/internal/localnotify"
	"github.com/hexeract/hexeract/store/internal/sqlexec"
)

// Driver is the SQLite implementation of [store.Driver] with *sql.Tx
// transactions. Build it with Open. It is safe for concurrent use.
type Driver struct {
	db  *sql.DB
	log *slog.Logger
	hub localnotify.Hub
	mig sqlexec.Migrator

	sched    sync.Map // store.SchedulerTable -> *schedSQL
	sagaOnce sync.Once
	sagaSem  chan struct{} // one saga transition of this driver at a time (saga.go)
}

var _ store.Driver[*sql.Tx] = (*Driver)(nil)

// Option configures a Driver.
type Option func(*Driver)

// WithLogger sets the driver's logger. Default: slog.Default().
func WithLogger(l *slog.Logger) Option { return func(d *Driver) { d.log = l } }

// pragmas are set on every connection Open makes.
const pragmas = "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate"

// DSN returns the modernc.org/sqlite data source name Open uses for url:
// sqlite:///absolute/path.db, sqlite://relative/path.db, sqlite:path.db or
// sqlite::memory:. Query parameters of url are kept.
func DSN(rawURL string) (dsn string, memory bool, err error) {
	if !strings.HasPrefix(rawURL, "sqlite:") {
		return "", false, fmt.Errorf("sqlite: %q is not a sqlite:///path/file.db or sqlite::memory: URL", rawURL)
	}
	rest := strings.TrimPrefix(rawURL, "sqlite:")
	query := ""
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest, query = rest[:i], rest[i+1:]
	}
	switch {
	case rest == ":memory:" || rest == "//:memory:":
		memory = true
		rest = ":memory:"
	case strings.HasPrefix(rest, "//"):
		rest = strings.TrimPrefix(rest, "//") // sqlite:///abs -> /abs; sqlite://rel -> rel
	}
	if rest == "" {
		return "", false, fmt.Errorf("sqlite: %q names no file", rawURL)
	}
	if p, err := url.PathUnescape(rest); err == nil {
		rest = p
	}
	dsn = "file:" + rest + "?" + pragmas
	if memory {
		dsn = "file::memory:?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_txlock=immediate"
	}
	if query != "" {
		dsn += "&" + query
	}
	return dsn, memory, nil
}

// Open opens (creating it if needed) the database at url: see [DSN] for
// the forms. An in-memory database lives as long as the Driver and is
// reached through one connection, so operations on it never run in
// parallel. Close closes the database.
func Open(ctx context.Context, rawURL string, opts ...Option) (*Driver, error) {
	dsn, memory, err := DSN(rawURL)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", rawURL, err)
	}
	if memory {
		db.SetMaxOpenConns(1)
		db.SetConnMaxIdleTime(0)
		db.SetConnMaxLifetime(0)
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", rawURL, err)
	}
	d := &Driver{db: db, log: slog.Default()}
	for _, opt := range opts {
		if opt != nil {
			opt(d)
		}
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	d.mig = sqlexec.Migrator{
		DB: db,
		CreateVersionTable: `CREATE TABLE IF NOT EXISTS ` + store.MigrationTable + ` (
	component  TEXT     NOT NULL,
	version    INTEGER  NOT NULL,
	name       TEXT     NOT NULL,
	applied_at DATETIME NOT NULL,
	PRIMARY KEY (component, version)
)`,
		VersionTableExists: func(ctx context.Context, q sqlexec.Querier) (bool, error) {
			var n int
			err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, store.MigrationTable).Scan(&n)
			return n > 0, err
		},
	}
	return d, nil
}

// DB returns the driver's database handle.
func (d *Driver) DB() *sql.DB { return d.db }

// Dialect returns store.SQLite.
func (d *Driver) Dialect() store.Dialect { return store.SQLite }

// Executor runs operations on the pool.
func (d *Driver) Executor() store.Executor { return &executor{d: d, q: d.db} }

// Begin starts an IMMEDIATE transaction (it holds the write lock).
func (d *Driver) Begin(ctx context.Context) (store.ExecutorTx, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return &executor{d: d, q: tx, Tx: sqlexec.Tx{Tx: tx}}, nil
}

// UnwrapTx runs operations inside the caller's transaction tx.
func (d *Driver) UnwrapTx(tx *sql.Tx) store.ExecutorTx {
	return &executor{d: d, q: tx, Tx: sqlexec.Tx{Tx: tx, Borrowed: true}}
}

// TxOf returns the *sql.Tx behind an ExecutorTx of this driver.
func (d *Driver) TxOf(ex store.Executor) (*sql.Tx, bool) {
	e, ok := ex.(*executor)
	if !ok || e.Tx.Tx == nil {
		return nil, false
	}
	return e.Tx.Tx, true
}

// InTx runs fn in an IMMEDIATE transaction and commits it when fn returns
// nil.
func (d *Driver) InTx(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	return sqlexec.InTx(ctx, d.db, nil, fn)
}

// Notifier returns the in-process notifier.
func (d *Driver) Notifier() store.Notifier { return &d.hub }

// Migrate applies the pending migrations of component, each in one
// IMMEDIATE transaction (SQLite's DDL is transactional), which serialises
// concurrent migrators.
func (d *Driver) Migrate(ctx context.Context, component string, migrations []store.Migration) ([]int, error) {
	return d.mig.Apply(ctx, component, migrations)
}

// MigrationStatus reports the state of each migration of component.
func (d *Driver) MigrationStatus(ctx context.Context, component string, migrations []store.Migration) ([]store.MigrationStatus, error) {
	return d.mig.Status(ctx, component, migrations)
}

// Close closes the database.
func (d *Driver) Close() error { return d.db.Close() }

// executor implements store.Executor and store.ExecutorTx. The operations
// of each component are in that component's file (outbox.go, saga.go ...).
type executor struct {
	d *Driver
	q sqlexec.Querier
	sqlexec.Tx
}
