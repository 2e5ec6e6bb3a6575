package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hexeract/hexeract/store"
)

// lockKey is the advisory lock a component's migrators take.
func lockKey(component string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("hexeract-migrate:" + component))
	return int64(h.Sum64())
}

const createVersionTable = `CREATE TABLE IF NOT EXISTS ` + store.MigrationTable + ` (
	component  text        NOT NULL,
	version    integer     NOT NULL,
	name       text        NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (component, version)
)`

// Migrate applies the pending migrations of component, each in its own
// transaction under the component's advisory lock.
func (d *Driver) Migrate(ctx context.Context, component string, migrations []store.Migration) ([]int, error) {
	ms, err := store.SortMigrations(migrations)
	if err != nil {
		return nil, fmt.Errorf("migrate %s: %w", component, err)
	}
	// CREATE TABLE IF NOT EXISTS can still race on the catalog; serialise it.
	err = pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey(store.MigrationTable)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, createVersionTable)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("migrate %s: create %s: %w", component, store.MigrationTable, err)
	}
	var applied []int
	for _, m := range ms {
		did := false
		err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey(component)); err != nil {
				return err
			}
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+store.MigrationTable+` WHERE component = $1 AND version = $2)`,
				component, m.Version).Scan(&exists); err != nil || exists {
				return err
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+store.MigrationTable+` (component, version, name) VALUES ($1, $2, $3)`,
				component, m.Version, m.Name); err != nil {
				return err
			}
			did = true
			return nil
		})
		if err != nil {
			return applied, fmt.Errorf("migrate %s to version %d (%s): %w", component, m.Version, m.Name, err)
		}
		if did {
			applied = append(applied, m.Version)
		}
	}
	return applied, nil
}

// MigrationStatus reports the state of each migration of component.
func (d *Driver) MigrationStatus(ctx context.Context, component string, migrations []store.Migration) ([]store.MigrationStatus, error) {
	ms, err := store.SortMigrations(migrations)
	if err != nil {
		return nil, err
	}
	applied := map[int]time.Time{}
	rows, err := d.pool.Query(ctx, `SELECT version, applied_at FROM `+store.MigrationTable+` WHERE component = $1`, component)
	if err != nil {
		var pgErr interface{ SQLState() string }
		if !errors.As(err, &pgErr) || pgErr.SQLState() != "42P01" { // undefined_table: nothing applied yet
			return nil, err
		}
		rows = nil
	}
	if rows != nil {
		for rows.Next() {
			var v int
			var at time.Time
			if err := rows.Scan(&v, &at); err != nil {
				rows.Close()
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
