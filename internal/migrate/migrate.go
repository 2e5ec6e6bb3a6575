// Package migrate applies Hexeract's versioned SQL migrations to
// PostgreSQL. Each component (an outbox table, a scheduler table, a saga
// store) has its own ordered list of migrations; applied versions are
// recorded in the table hexeract_schema_migrations, and every run holds a
// transaction-scoped advisory lock so concurrent migrators (several replicas
// starting at once) apply each migration exactly once.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// VersionTable records applied migrations.
const VersionTable = "hexeract_schema_migrations"

// Migration is one schema step. SQL may hold several statements.
type Migration struct {
	Version int    // 1, 2, 3 ... strictly increasing within a component
	Name    string // short description, for status output
	SQL     string
}

// Status is the state of one migration of a component.
type Status struct {
	Component string
	Version   int
	Name      string
	AppliedAt time.Time // zero when pending
}

// Pending reports whether the migration has not been applied.
func (s Status) Pending() bool { return s.AppliedAt.IsZero() }

func lockKey(component string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("hexeract-migrate:" + component))
	return int64(h.Sum64())
}

func validate(migrations []Migration) ([]Migration, error) {
	sorted := append([]Migration(nil), migrations...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Version < sorted[j].Version })
	for i, m := range sorted {
		if m.Version <= 0 {
			return nil, fmt.Errorf("migration %q has version %d; versions start at 1", m.Name, m.Version)
		}
		if i > 0 && sorted[i-1].Version == m.Version {
			return nil, fmt.Errorf("two migrations have version %d", m.Version)
		}
	}
	return sorted, nil
}

const createVersionTable = `CREATE TABLE IF NOT EXISTS ` + VersionTable + ` (
	component  text        NOT NULL,
	version    integer     NOT NULL,
	name       text        NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (component, version)
)`

// Apply applies the pending migrations of component, in version order, each
// in its own transaction under the component's advisory lock. It returns the
// versions it applied (none when the schema is current).
func Apply(ctx context.Context, pool *pgxpool.Pool, component string, migrations []Migration) ([]int, error) {
	sorted, err := validate(migrations)
	if err != nil {
		return nil, fmt.Errorf("migrate %s: %w", component, err)
	}
	if err := ensureVersionTable(ctx, pool); err != nil {
		return nil, err
	}
	var applied []int
	for _, m := range sorted {
		did, err := applyOne(ctx, pool, component, m)
		if err != nil {
			return applied, fmt.Errorf("migrate %s to version %d (%s): %w", component, m.Version, m.Name, err)
		}
		if did {
			applied = append(applied, m.Version)
		}
	}
	return applied, nil
}

func ensureVersionTable(ctx context.Context, pool *pgxpool.Pool) error {
	// CREATE TABLE IF NOT EXISTS can still race on the catalog; serialise it.
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey(VersionTable)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, createVersionTable)
		return err
	})
}

func applyOne(ctx context.Context, pool *pgxpool.Pool, component string, m Migration) (bool, error) {
	did := false
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey(component)); err != nil {
			return err
		}
		var exists bool
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+VersionTable+` WHERE component = $1 AND version = $2)`,
			component, m.Version).Scan(&exists)
		if err != nil || exists {
			return err
		}
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+VersionTable+` (component, version, name) VALUES ($1, $2, $3)`,
			component, m.Version, m.Name); err != nil {
			return err
		}
		did = true
		return nil
	})
	return did, err
}

// Statuses reports, for each migration of component, whether and when it was applied.
func Statuses(ctx context.Context, pool *pgxpool.Pool, component string, migrations []Migration) ([]Status, error) {
	sorted, err := validate(migrations)
	if err != nil {
		return nil, err
	}
	applied := map[int]time.Time{}
	rows, err := pool.Query(ctx, `SELECT version, applied_at FROM `+VersionTable+` WHERE component = $1`, component)
	if err != nil {
		var pgErr interface{ SQLState() string }
		if errors.As(err, &pgErr) && pgErr.SQLState() == "42P01" { // undefined_table: nothing applied yet
			rows = nil
		} else {
			return nil, err
		}
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
	out := make([]Status, 0, len(sorted))
	for _, m := range sorted {
		out = append(out, Status{Component: component, Version: m.Version, Name: m.Name, AppliedAt: applied[m.Version]})
	}
	return out, nil
}
