// Package sqlexec holds what the database/sql drivers (MySQL/MariaDB and
// SQLite) share: the querier interface that *sql.DB, *sql.Tx and *sql.Conn
// satisfy, and the migration runner.
package sqlexec

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hexeract/hexeract/store"
)

// Querier is what *sql.DB, *sql.Tx and *sql.Conn have in common.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// StepSeparator splits a migration's SQL into statements run one by one.
const StepSeparator = "-- +step"

// Steps returns the statements of a migration's SQL: the parts between
// lines holding only StepSeparator, blank parts left out.
func Steps(sqlText string) []string {
	var out []string
	for _, part := range strings.Split(sqlText, "\n"+StepSeparator+"\n") {
		if p := strings.TrimSpace(part); p != "" && p != StepSeparator {
			out = append(out, p)
		}
	}
	return out
}

// Migrator applies versioned migrations over database/sql.
type Migrator struct {
	// DB is the database the migrations are applied to.
	DB *sql.DB
	// CreateVersionTable creates store.MigrationTable if it does not exist.
	CreateVersionTable string
	// VersionTableExists reports whether store.MigrationTable exists.
	VersionTableExists func(ctx context.Context, q Querier) (bool, error)
	// Lock takes the database-wide migration lock on conn and returns its
	// release; nil when each migration's own transaction serialises
	// migrators (SQLite's BEGIN IMMEDIATE).
	Lock func(ctx context.Context, conn *sql.Conn) (unlock func(), err error)
}

// Apply applies the pending migrations of component in version order and
// returns the versions it applied.
func (mg Migrator) Apply(ctx context.Context, component string, migrations []store.Migration) ([]int, error) {
	ms, err := store.SortMigrations(migrations)
	if err != nil {
		return nil, fmt.Errorf("migrate %s: %w", component, err)
	}
	conn, err := mg.DB.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate %s: %w", component, err)
	}
	defer func() { _ = conn.Close() }()
	if mg.Lock != nil {
		unlock, err := mg.Lock(ctx, conn)
		if err != nil {
			return nil, fmt.Errorf("migrate %s: take the migration lock: %w", component, err)
		}
		defer unlock()
	}
	if _, err := conn.ExecContext(ctx, mg.CreateVersionTable); err != nil {
		return nil, fmt.Errorf("migrate %s: create %s: %w", component, store.MigrationTable, err)
	}
	var applied []int
	for _, m := range ms {
		did, err := mg.applyOne(ctx, conn, component, m)
		if err != nil {
			return applied, fmt.Errorf("migrate %s to version %d (%s): %w", component, m.Version, m.Name, err)
		}
		if did {
			applied = append(applied, m.Version)
		}
	}
	return applied, nil
}

func (mg Migrator) applyOne(ctx context.Context, conn *sql.Conn, component string, m store.Migration) (did bool, err error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() {
		if !did {
			_ = tx.Rollback()
		}
	}()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+store.MigrationTable+` WHERE component = ? AND version = ?`,
		component, m.Version).Scan(&n); err != nil {
		return false, err
	}
	if n > 0 {
		return false, nil
	}
	for _, stmt := range Steps(m.SQL) {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return false, fmt.Errorf("%w\nin statement:\n%s", err, stmt)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+store.MigrationTable+` (component, version, name, applied_at) VALUES (?, ?, ?, ?)`,
		component, m.Version, m.Name, time.Now().UTC()); err != nil {
		return false, err
	}
	if err := tx.Commit(); err != nil {
		return false, err
	}
	return true, nil
}

// Status reports the state of each migration of component without
// changing the database.
func (mg Migrator) Status(ctx context.Context, component string, migrations []store.Migration) ([]store.MigrationStatus, error) {
	ms, err := store.SortMigrations(migrations)
	if err != nil {
		return nil, err
	}
	applied := map[int]time.Time{}
	exists, err := mg.VersionTableExists(ctx, mg.DB)
	if err != nil {
		return nil, err
	}
	if exists {
		rows, err := mg.DB.QueryContext(ctx, `SELECT version, applied_at FROM `+store.MigrationTable+` WHERE component = ?`, component)
		if err != nil {
			return nil, err
		}
		defer func() { _ = rows.Close() }()
		for rows.Next() {
			var v int
			var at time.Time
			if err := rows.Scan(&v, &at); err != nil {
				return nil, err
			}
			applied[v] = at
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	out := make([]store.MigrationStatus, 0, len(ms))
	for _, m := range ms {
		out = append(out, store.MigrationStatus{Component: component, Version: m.Version, Name: m.Name, AppliedAt: applied[m.Version]})
	}
	return out, nil
}

// InTx runs fn in a transaction of db and commits it when fn returns nil;
// it rolls back when fn returns an error or panics.
func InTx(ctx context.Context, db *sql.DB, opts *sql.TxOptions, fn func(ctx context.Context, tx *sql.Tx) error) (err error) {
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if err = fn(ctx, tx); err != nil {
		return err
	}
	return tx.Commit()
}

// Tx is the transaction state of a database/sql driver's executor: Tx is
// nil on the pool, and Borrowed says the caller owns it. With Savepoint
// set, the executor is a savepoint of Tx (see [Tx.Nest]): Commit releases
// it and Rollback undoes it, leaving Tx open.
type Tx struct {
	Tx        *sql.Tx
	Borrowed  bool
	Savepoint string
	// Done, when set, is called after Commit or Rollback ended the
	// transaction (it must tolerate being called more than once).
	Done func()
}

// Nest starts the savepoint name in the transaction and returns its state.
func (t Tx) Nest(ctx context.Context, name string) (Tx, error) {
	if t.Tx == nil {
		return Tx{}, errors.New("store: a savepoint outside a transaction")
	}
	if _, err := t.Tx.ExecContext(ctx, "SAVEPOINT "+name); err != nil {
		return Tx{}, err
	}
	return Tx{Tx: t.Tx, Savepoint: name}, nil
}

// Commit commits the transaction unless it is borrowed; a savepoint is
// released.
func (t Tx) Commit(ctx context.Context) error {
	switch {
	case t.Borrowed:
		return store.ErrBorrowedTx
	case t.Tx == nil:
		return errors.New("store: Commit outside a transaction")
	case t.Savepoint != "":
		_, err := t.Tx.ExecContext(ctx, "RELEASE SAVEPOINT "+t.Savepoint)
		return err
	}
	if t.Done != nil {
		defer t.Done()
	}
	return t.Tx.Commit()
}

// Rollback rolls the transaction back unless it is borrowed; after Commit
// it is a no-op. A savepoint is rolled back to and released.
func (t Tx) Rollback(ctx context.Context) error {
	switch {
	case t.Borrowed:
		return store.ErrBorrowedTx
	case t.Tx == nil:
		return nil
	case t.Savepoint != "":
		if _, err := t.Tx.ExecContext(context.WithoutCancel(ctx), "ROLLBACK TO SAVEPOINT "+t.Savepoint); err != nil {
			return err
		}
		_, err := t.Tx.ExecContext(context.WithoutCancel(ctx), "RELEASE SAVEPOINT "+t.Savepoint)
		return err
	}
	if t.Done != nil {
		defer t.Done()
	}
	if err := t.Tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return err
	}
	return nil
}
