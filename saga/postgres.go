package saga

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/hexeract/hexeract/internal/migrate"
	"github.com/hexeract/hexeract/internal/sqlident"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultTable is the table of the PostgreSQL store when none is configured.
const DefaultTable = "hexeract_sagas"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// PostgresStore is the PostgreSQL [Store]: one row per instance in a table
// (default [DefaultTable]) with the state as jsonb and a version column for
// optimistic concurrency. Its units of work are pgx transactions, in which
// the saga runtime also writes the outgoing messages (through the outbox)
// and timeouts (through the scheduler), so a transition and its messages
// commit together or not at all.
type PostgresStore struct {
	pool  *pgxpool.Pool
	table sqlident.Name
	q     pgQueries
}

type pgQueries struct {
	load, insert, update, del, get, list, purge string
}

// PostgresOption configures [NewPostgresStore].
type PostgresOption func(*pgConfig)

type pgConfig struct {
	table   string
	migrate bool
}

// WithTable sets the table name (a plain or schema-qualified SQL name of
// lower-case letters, digits and underscores). The default is [DefaultTable].
func WithTable(name string) PostgresOption { return func(c *pgConfig) { c.table = name } }

// WithoutMigrate stops [NewPostgresStore] from creating or upgrading the
// table; use it when migrations run separately ([PostgresStore.Migrate] or
// "hexeract schema migrate").
func WithoutMigrate() PostgresOption { return func(c *pgConfig) { c.migrate = false } }

// NewPostgresStore returns a store on pool. Unless [WithoutMigrate] is
// given, it applies the store's schema migrations first.
func NewPostgresStore(ctx context.Context, pool *pgxpool.Pool, opts ...PostgresOption) (*PostgresStore, error) {
	if pool == nil {
		return nil, errors.New("saga: NewPostgresStore needs a pgx pool")
	}
	cfg := pgConfig{table: DefaultTable, migrate: true}
	for _, o := range opts {
		o(&cfg)
	}
	table, err := sqlident.Parse(cfg.table)
	if err != nil {
		return nil, fmt.Errorf("saga: table name: %w", err)
	}
	t := table.Quoted()
	s := &PostgresStore{pool: pool, table: table, q: pgQueries{
		load:   `SELECT status, version, state, meta, created_at, updated_at, completed_at FROM ` + t + ` WHERE saga = $1 AND key = $2`,
		insert: `INSERT INTO ` + t + ` (saga, key, status, version, state, meta, completed_at) VALUES ($1, $2, $3, 1, $4, $5, $6) ON CONFLICT (saga, key) DO NOTHING`,
		update: `UPDATE ` + t + ` SET status = $3, version = version + 1, state = $4, meta = $5, completed_at = $6, updated_at = now() WHERE saga = $1 AND key = $2 AND version = $7`,
		del:    `DELETE FROM ` + t + ` WHERE saga = $1 AND key = $2 AND version = $3`,
		get:    `SELECT saga, key, status, version, state, meta, created_at, updated_at, completed_at FROM ` + t + ` WHERE saga = $1 AND key = $2`,
		list: `SELECT saga, key, status, version, state, meta, created_at, updated_at, completed_at FROM ` + t +
			` WHERE ($1 = '' OR saga = $1) AND ($2 = '' OR status = $2) ORDER BY updated_at DESC, key LIMIT $3`,
		purge: `DELETE FROM ` + t + ` WHERE completed_at IS NOT NULL AND completed_at < $1`,
	}}
	if cfg.migrate {
		if err := s.Migrate(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Table returns the store's table name.
func (s *PostgresStore) Table() string { return s.table.String() }

// Pool returns the store's pool.
func (s *PostgresStore) Pool() *pgxpool.Pool { return s.pool }

// Migrations returns the store's schema migrations for table, with the table
// name validated and quoted. "hexeract schema migrate" uses it.
func Migrations(table string) ([]migrate.Migration, error) {
	name, err := sqlident.Parse(table)
	if err != nil {
		return nil, fmt.Errorf("saga: table name: %w", err)
	}
	upd, err := sqlident.Parse(name.Table + "_upd_idx")
	if err != nil {
		return nil, fmt.Errorf("saga: table name %q is too long for its index names: %w", table, err)
	}
	done, err := sqlident.Parse(name.Table + "_done_idx")
	if err != nil {
		return nil, fmt.Errorf("saga: table name %q is too long for its index names: %w", table, err)
	}
	entries, err := migrationFiles.ReadDir("migrations")
	if err != nil {
		return nil, err
	}
	var out []migrate.Migration
	for i, e := range entries {
		raw, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		tpl, err := template.New(e.Name()).Parse(string(raw))
		if err != nil {
			return nil, fmt.Errorf("saga: migration %s: %w", e.Name(), err)
		}
		var buf bytes.Buffer
		if err := tpl.Execute(&buf, map[string]string{
			"Table": name.Quoted(), "UpdatedIndex": upd.Quoted(), "CompletedIndex": done.Quoted(),
		}); err != nil {
			return nil, err
		}
		out = append(out, migrate.Migration{
			Version: i + 1,
			Name:    strings.TrimSuffix(e.Name()[4:], ".sql"),
			SQL:     buf.String(),
		})
	}
	return out, nil
}

// Component is the migration component name of the store on table.
func Component(table string) string { return "saga:" + table }

// Migrate applies the store's pending schema migrations.
func (s *PostgresStore) Migrate(ctx context.Context) error {
	ms, err := Migrations(s.table.String())
	if err != nil {
		return err
	}
	if _, err := migrate.Apply(ctx, s.pool, Component(s.table.String()), ms); err != nil {
		return fmt.Errorf("saga: %w", err)
	}
	return nil
}

// Begin starts a pgx transaction.
func (s *PostgresStore) Begin(ctx context.Context) (Tx, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return &PostgresTx{s: s, tx: tx}, nil
}

// Get returns one instance.
func (s *PostgresStore) Get(ctx context.Context, saga, key string) (*Instance, error) {
	rows, err := s.pool.Query(ctx, s.q.get, saga, key)
	if err != nil {
		return nil, err
	}
	ins, err := scanInstances(rows)
	if err != nil {
		return nil, err
	}
	if len(ins) == 0 {
		return nil, fmt.Errorf("saga %s key %q: %w", saga, key, ErrNotFound)
	}
	return ins[0], nil
}

// List returns instances matching f, most recently updated first.
func (s *PostgresStore) List(ctx context.Context, f Filter) ([]*Instance, error) {
	rows, err := s.pool.Query(ctx, s.q.list, f.Saga, string(f.Status), f.limit())
	if err != nil {
		return nil, err
	}
	return scanInstances(rows)
}

// Purge deletes instances that finished before before.
func (s *PostgresStore) Purge(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, s.q.purge, before)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func scanInstances(rows pgx.Rows) ([]*Instance, error) {
	defer rows.Close()
	var out []*Instance
	for rows.Next() {
		in := &Instance{}
		var status string
		var meta []byte
		var completed *time.Time
		if err := rows.Scan(&in.Saga, &in.Key, &status, &in.Version, &in.State, &meta, &in.CreatedAt, &in.UpdatedAt, &completed); err != nil {
			return nil, err
		}
		in.Status = Status(status)
		if completed != nil {
			in.CompletedAt = *completed
		}
		if err := json.Unmarshal(meta, &in.Meta); err != nil {
			return nil, fmt.Errorf("saga %s key %q: bad meta column: %w", in.Saga, in.Key, err)
		}
		out = append(out, in)
	}
	return out, rows.Err()
}

// PostgresTx is the unit of work of a [PostgresStore]: a pgx transaction.
type PostgresTx struct {
	s  *PostgresStore
	tx pgx.Tx
}

// Pgx returns the underlying transaction. Saga handlers reach it through
// [Context.Tx] to write their own rows atomically with the transition.
func (t *PostgresTx) Pgx() pgx.Tx { return t.tx }

// Load reads an instance.
func (t *PostgresTx) Load(ctx context.Context, saga, key string) (*Instance, error) {
	in := &Instance{Saga: saga, Key: key}
	var status string
	var meta []byte
	var completed *time.Time
	err := t.tx.QueryRow(ctx, t.s.q.load, saga, key).Scan(&status, &in.Version, &in.State, &meta, &in.CreatedAt, &in.UpdatedAt, &completed)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("saga %s key %q: %w", saga, key, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	in.Status = Status(status)
	if completed != nil {
		in.CompletedAt = *completed
	}
	if len(meta) > 2 { // "{}" is the common case
		if err := json.Unmarshal(meta, &in.Meta); err != nil {
			return nil, fmt.Errorf("saga %s key %q: bad meta column: %w", saga, key, err)
		}
	}
	return in, nil
}

func metaJSON(m Meta) ([]byte, error) {
	if len(m.Timeouts) == 0 && len(m.Compensations) == 0 && m.Failure == "" {
		return []byte("{}"), nil
	}
	return json.Marshal(m)
}

func completedAt(in *Instance) *time.Time {
	if in.CompletedAt.IsZero() {
		return nil
	}
	return &in.CompletedAt
}

// Insert creates the instance; a concurrent creator of the same key makes
// it return [ErrConflict] (INSERT ... ON CONFLICT DO NOTHING, so the
// transaction stays usable).
func (t *PostgresTx) Insert(ctx context.Context, in *Instance) error {
	meta, err := metaJSON(in.Meta)
	if err != nil {
		return err
	}
	tag, err := t.tx.Exec(ctx, t.s.q.insert, in.Saga, in.Key, string(in.Status), []byte(in.State), meta, completedAt(in))
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("saga %s key %q: insert: %w", in.Saga, in.Key, ErrConflict)
	}
	in.Version = 1
	return nil
}

// Update saves in if nobody changed it since it was loaded.
func (t *PostgresTx) Update(ctx context.Context, in *Instance) error {
	meta, err := metaJSON(in.Meta)
	if err != nil {
		return err
	}
	tag, err := t.tx.Exec(ctx, t.s.q.update, in.Saga, in.Key, string(in.Status), []byte(in.State), meta, completedAt(in), in.Version)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("saga %s key %q: update of version %d: %w", in.Saga, in.Key, in.Version, ErrConflict)
	}
	in.Version++
	return nil
}

// Delete removes in if nobody changed it since it was loaded.
func (t *PostgresTx) Delete(ctx context.Context, in *Instance) error {
	tag, err := t.tx.Exec(ctx, t.s.q.del, in.Saga, in.Key, in.Version)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("saga %s key %q: delete of version %d: %w", in.Saga, in.Key, in.Version, ErrConflict)
	}
	return nil
}

// Commit commits the transaction. A serialization failure is reported as
// [ErrConflict].
func (t *PostgresTx) Commit(ctx context.Context) error {
	err := t.tx.Commit(ctx)
	var pgErr interface{ SQLState() string }
	if errors.As(err, &pgErr) && (pgErr.SQLState() == "40001" || pgErr.SQLState() == "40P01") {
		return fmt.Errorf("saga: commit: %v: %w", err, ErrConflict)
	}
	return err
}

// Rollback rolls the transaction back.
func (t *PostgresTx) Rollback(ctx context.Context) error { return t.tx.Rollback(ctx) }
