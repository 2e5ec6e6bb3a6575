// Package mysql is Hexeract's MySQL 8 and MariaDB 10.6+ storage driver, on
// database/sql with github.com/go-sql-driver/mysql.
//
// Transactions are *sql.Tx, at READ COMMITTED. The outbox relay and the
// scheduler claim with FOR UPDATE SKIP LOCKED. There is no LISTEN/NOTIFY:
// a producer wakes the relays of the same Driver value in its process at
// once, and relays poll for what other processes commit. Locks that must
// survive the loss of a connection (per-key order, the cron lease) are rows
// with an expiry, never session locks alone.
package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/internal/localnotify"
	"github.com/hexeract/hexeract/store/internal/sqlexec"
)

// Driver is the MySQL/MariaDB implementation of [store.Driver] with *sql.Tx
// transactions. Build it with New on a *sql.DB you own (its DSN must set
// parseTime=true) or with Open from a URL. It is safe for concurrent use.
type Driver struct {
	db  *sql.DB
	own bool
	log *slog.Logger
	hub localnotify.Hub
	mig sqlexec.Migrator

	sched sync.Map // store.SchedulerTable -> *schedSQL
}

var _ store.Driver[*sql.Tx] = (*Driver)(nil)

// Option configures a Driver.
type Option func(*Driver)

// WithLogger sets the driver's logger. Default: slog.Default().
func WithLogger(l *slog.Logger) Option { return func(d *Driver) { d.log = l } }

// txOptions is the isolation of every transaction the driver begins: READ
// COMMITTED avoids the gap locks of REPEATABLE READ that make concurrent
// SKIP LOCKED claims and inserts deadlock.
func txOptions() *sql.TxOptions { return &sql.TxOptions{Isolation: sql.LevelReadCommitted} }

// New returns a driver on db, whose DSN must set parseTime=true. Close
// leaves db open: it is the caller's.
func New(db *sql.DB, opts ...Option) *Driver {
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
	component  VARCHAR(255) NOT NULL,
	version    INT          NOT NULL,
	name       VARCHAR(255) NOT NULL,
	applied_at DATETIME(6)  NOT NULL,
	PRIMARY KEY (component, version)
)`,
		VersionTableExists: func(ctx context.Context, q sqlexec.Querier) (bool, error) {
			var n int
			err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?`,
				store.MigrationTable).Scan(&n)
			return n > 0, err
		},
		Lock: lockMigrations,
	}
	return d
}

// lockMigrations takes a named lock on conn: MySQL runs DDL outside
// transactions, so the lock, not a transaction, serialises migrators. The
// server releases it if the connection is lost.
func lockMigrations(ctx context.Context, conn *sql.Conn) (func(), error) {
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK('hexeract_migrate', 120)`).Scan(&got); err != nil {
		return nil, err
	}
	if !got.Valid || got.Int64 != 1 {
		return nil, errors.New("GET_LOCK('hexeract_migrate') timed out after 120 s")
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = conn.ExecContext(ctx, `SELECT RELEASE_LOCK('hexeract_migrate')`)
	}, nil
}

// Open connects to the database at url, mysql://user:password@host:port/db
// with any go-sql-driver/mysql parameter in the query, and checks the
// connection. parseTime=true, loc=UTC and interpolateParams=true are
// always set. Close closes the pool. Errors never hold the URL's password.
func Open(ctx context.Context, rawURL string, opts ...Option) (*Driver, error) {
	cfg, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err == nil {
		if err = db.PingContext(ctx); err != nil {
			_ = db.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("mysql: connect to %s: %s", store.RedactURL(rawURL), store.RedactText(err.Error(), rawURL))
	}
	d := New(db, opts...)
	d.own = true
	return d, nil
}

// ParseURL turns a mysql:// URL into a go-sql-driver/mysql configuration
// with parseTime=true and loc=UTC.
func ParseURL(rawURL string) (*gomysql.Config, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "mysql" && u.Scheme != "mariadb") {
		return nil, fmt.Errorf("mysql: %s is not a mysql://user:password@host:port/database URL", store.RedactURL(rawURL))
	}
	host := u.Host
	if host == "" {
		host = "127.0.0.1:3306"
	} else if u.Port() == "" {
		host += ":3306"
	}
	dsn := "tcp(" + host + ")/" + strings.TrimPrefix(u.Path, "/")
	if u.User != nil {
		cred := u.User.Username()
		if pw, ok := u.User.Password(); ok {
			cred += ":" + pw
		}
		dsn = cred + "@" + dsn
	}
	if u.RawQuery != "" {
		dsn += "?" + u.RawQuery
	}
	cfg, err := gomysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("mysql: URL %s: %s", store.RedactURL(rawURL), store.RedactText(err.Error(), rawURL))
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	// One round trip per statement with arguments instead of three
	// (prepare, execute, close): the client escapes the arguments.
	cfg.InterpolateParams = true
	return cfg, nil
}

// DB returns the driver's database handle.
func (d *Driver) DB() *sql.DB { return d.db }

// Dialect returns store.MySQL.
func (d *Driver) Dialect() store.Dialect { return store.MySQL }

// Executor runs operations on the pool.
func (d *Driver) Executor() store.Executor { return &executor{d: d, q: d.db} }

// Begin starts a READ COMMITTED transaction.
func (d *Driver) Begin(ctx context.Context) (store.ExecutorTx, error) {
	tx, err := d.db.BeginTx(ctx, txOptions())
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

// InTx runs fn in a READ COMMITTED transaction and commits it when fn
// returns nil.
func (d *Driver) InTx(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	return sqlexec.InTx(ctx, d.db, txOptions(), fn)
}

// Notifier returns the in-process notifier.
func (d *Driver) Notifier() store.Notifier { return &d.hub }

// Migrate applies the pending migrations of component under GET_LOCK.
// MySQL commits DDL implicitly, so a migration interrupted half-way is
// completed by the next run only if its statements are idempotent; every
// Hexeract migration is.
func (d *Driver) Migrate(ctx context.Context, component string, migrations []store.Migration) ([]int, error) {
	return d.mig.Apply(ctx, component, migrations)
}

// MigrationStatus reports the state of each migration of component.
func (d *Driver) MigrationStatus(ctx context.Context, component string, migrations []store.Migration) ([]store.MigrationStatus, error) {
	return d.mig.Status(ctx, component, migrations)
}

// Close closes the pool when Open built it.
func (d *Driver) Close() error {
	if d.own {
		return d.db.Close()
	}
	return nil
}

// executor implements store.Executor and store.ExecutorTx. The operations
// of each component are in that component's file (outbox.go, saga.go ...).
type executor struct {
	d *Driver
	q sqlexec.Querier
	sqlexec.Tx

	mu      sync.Mutex
	pending map[string]bool // channels to notify once this transaction commits
}

// Commit commits the transaction, then wakes the in-process listeners of
// what it announced: a wake-up before the commit would find nothing.
func (e *executor) Commit(ctx context.Context) error {
	if err := e.Tx.Commit(ctx); err != nil {
		return err
	}
	e.mu.Lock()
	chans := e.pending
	e.pending = nil
	e.mu.Unlock()
	for ch := range chans {
		_ = e.d.hub.Notify(ctx, ch)
	}
	return nil
}

// notifyOnCommit wakes the listeners of channel after this executor's
// transaction commits when the driver began it, else now (on the pool the
// statement has committed; in the caller's transaction the commit is out of
// sight, and the listeners poll for what they miss).
func (e *executor) notifyOnCommit(ctx context.Context, channel string) {
	if e.Tx.Tx != nil && !e.Borrowed {
		e.mu.Lock()
		if e.pending == nil {
			e.pending = map[string]bool{}
		}
		e.pending[channel] = true
		e.mu.Unlock()
		return
	}
	_ = e.d.hub.Notify(ctx, channel)
}
