// Package postgres is Hexeract's PostgreSQL storage driver, on pgx/v5.
//
// Transactions are pgx.Tx. The outbox relay claims with FOR UPDATE SKIP
// LOCKED, producers and pollers wake each other with LISTEN/NOTIFY across
// processes, per-key order and the cron lease use advisory locks, and large
// outbox batches are written with COPY.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hexeract/hexeract/internal/pgnotify"
	"github.com/hexeract/hexeract/store"
)

// Driver is the PostgreSQL implementation of [store.Driver] with pgx.Tx
// transactions. Build it with New on a pool you own, or with Open from a
// URL. It is safe for concurrent use.
type Driver struct {
	pool *pgxpool.Pool
	own  bool
	log  *slog.Logger

	sched sync.Map // store.SchedulerTable -> *schedSQL
}

var _ store.Driver[pgx.Tx] = (*Driver)(nil)

// Option configures a Driver.
type Option func(*Driver)

// WithLogger sets the logger of the driver's background work (the LISTEN
// connection). Default: slog.Default().
func WithLogger(l *slog.Logger) Option { return func(d *Driver) { d.log = l } }

// New returns a driver on pool. Close leaves pool open: it is the caller's.
func New(pool *pgxpool.Pool, opts ...Option) *Driver {
	d := &Driver{pool: pool, log: slog.Default()}
	for _, opt := range opts {
		if opt != nil {
			opt(d)
		}
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	return d
}

// Open connects to the database at url (postgres:// or postgresql://, any
// parameter pgx accepts) and checks the connection. Close closes the pool.
// Errors never hold the URL's password.
func Open(ctx context.Context, url string, opts ...Option) (*Driver, error) {
	pool, err := pgxpool.New(ctx, url)
	if err == nil {
		if err = pool.Ping(ctx); err != nil {
			pool.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: connect to %s: %s", store.RedactURL(url), store.RedactText(err.Error(), url))
	}
	d := New(pool, opts...)
	d.own = true
	return d, nil
}

// Pool returns the driver's connection pool.
func (d *Driver) Pool() *pgxpool.Pool { return d.pool }

// Dialect returns store.Postgres.
func (d *Driver) Dialect() store.Dialect { return store.Postgres }

// Executor runs operations on the pool.
func (d *Driver) Executor() store.Executor { return &executor{d: d, db: d.pool} }

// Begin starts a transaction.
func (d *Driver) Begin(ctx context.Context) (store.ExecutorTx, error) {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return &executor{d: d, db: tx, tx: tx}, nil
}

// UnwrapTx runs operations inside the caller's transaction tx.
func (d *Driver) UnwrapTx(tx pgx.Tx) store.ExecutorTx {
	return &executor{d: d, db: tx, tx: tx, borrowed: true}
}

// TxOf returns the pgx.Tx behind an ExecutorTx of this driver.
func (d *Driver) TxOf(ex store.Executor) (pgx.Tx, bool) {
	e, ok := ex.(*executor)
	if !ok || e.tx == nil {
		return nil, false
	}
	return e.tx, true
}

// InTx runs fn in a transaction and commits it when fn returns nil.
func (d *Driver) InTx(ctx context.Context, fn func(ctx context.Context, tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error { return fn(ctx, tx) })
}

// Notifier returns the LISTEN/NOTIFY notifier.
func (d *Driver) Notifier() store.Notifier { return notifier{d} }

// Close closes the pool when Open built it.
func (d *Driver) Close() error {
	if d.own {
		d.pool.Close()
	}
	return nil
}

// dbtx is what *pgxpool.Pool and pgx.Tx have in common.
type dbtx interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
}

// executor implements store.Executor and store.ExecutorTx. The operations
// of each component are in that component's file (outbox.go, saga.go ...).
type executor struct {
	d        *Driver
	db       dbtx
	tx       pgx.Tx // nil on the pool
	borrowed bool   // tx is the caller's
}

func (e *executor) Commit(ctx context.Context) error {
	switch {
	case e.borrowed:
		return store.ErrBorrowedTx
	case e.tx == nil:
		return errors.New("postgres: Commit outside a transaction")
	}
	return e.tx.Commit(ctx)
}

func (e *executor) Rollback(ctx context.Context) error {
	switch {
	case e.borrowed:
		return store.ErrBorrowedTx
	case e.tx == nil:
		return nil
	}
	err := e.tx.Rollback(ctx)
	if errors.Is(err, pgx.ErrTxClosed) {
		return nil
	}
	return err
}

type notifier struct{ d *Driver }

func (n notifier) Notify(ctx context.Context, channel string) error {
	_, err := n.d.pool.Exec(ctx, `SELECT pg_notify($1, '')`, channel)
	return err
}

func (n notifier) Listen(ctx context.Context, channel string, ready, wake func()) error {
	if ready == nil {
		ready = func() {}
	}
	if wake == nil {
		wake = func() {}
	}
	l, err := pgnotify.New(pgnotify.ConnectPool(n.d.pool), []string{channel},
		func(*pgconn.Notification) { wake() }, pgnotify.WithOnListen(ready), pgnotify.WithLogger(n.d.log))
	if err != nil {
		return err
	}
	l.Run(ctx)
	return nil
}

func (notifier) CrossProcess() bool { return true }
