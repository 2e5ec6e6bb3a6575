package saga

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hexeract/hexeract/internal/migrate"
	"github.com/hexeract/hexeract/internal/sqlident"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/store/postgres"
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
	drv   *postgres.Driver // the scheduler's statements run through it
	table sqlident.Name
	q     pgQueries
}

type pgQueries struct {
	load, save, get, history, list, purge string
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
// "hexeract migrate up").
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
	if err := CheckTable(cfg.table); err != nil {
		return nil, err
	}
	fn, _ := table.Derive("_save")
	hist, _ := table.Derive("_history")
	t, h := table.Quoted(), hist.Quoted()
	s := &PostgresStore{pool: pool, drv: postgres.New(pool), table: table, q: pgQueries{
		load: `SELECT status, version, state, meta, created_at, updated_at, completed_at FROM ` + t + ` WHERE saga = $1 AND key = $2`,
		save: `SELECT ` + fn.Quoted() + `($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		history: `SELECT at, kind, type, status, coalesce(note, ''), version, count(*) OVER () FROM ` + h +
			` WHERE saga = $1 AND key = $2 ORDER BY seq DESC LIMIT ` + strconv.Itoa(MaxHistory),
		get: `SELECT saga, key, status, version, state, meta, created_at, updated_at, completed_at FROM ` + t + ` WHERE saga = $1 AND key = $2`,
		list: `SELECT saga, key, status, version, state, meta, created_at, updated_at, completed_at FROM ` + t +
			` WHERE ($1 = '' OR saga = $1) AND ($2 = '' OR status = $2) ORDER BY updated_at DESC, key LIMIT $3`,
		purge: `WITH d AS (DELETE FROM ` + t + ` WHERE completed_at IS NOT NULL AND completed_at < $1 RETURNING saga, key),
h AS (DELETE FROM ` + h + ` x USING d WHERE x.saga = d.saga AND x.key = d.key RETURNING 1)
SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM h)`,
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

// CheckTable validates a store table name (and the names derived from it)
// without touching a database.
func CheckTable(table string) error {
	_, err := migrations(table)
	return err
}

// migrations returns the store's schema migrations for table, with the
// table name validated and quoted.
func migrations(table string) ([]migrate.Migration, error) {
	name, err := sqlident.Parse(table)
	if err != nil {
		return nil, fmt.Errorf("saga: table name: %w", err)
	}
	fn, err := name.Derive("_save")
	if err != nil {
		return nil, fmt.Errorf("saga: table name %q is too long for its save function name: %w", table, err)
	}
	done, err := sqlident.Parse(name.Table + "_done_idx")
	if err != nil {
		return nil, fmt.Errorf("saga: table name %q is too long for its index names: %w", table, err)
	}
	hist, err := name.Derive("_history")
	if err != nil {
		return nil, fmt.Errorf("saga: table name %q is too long for its history table name: %w", table, err)
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
			"Table": name.Quoted(), "CompletedIndex": done.Quoted(), "SaveFunc": fn.Quoted(),
			"History": hist.Quoted(), "MaxHistory": strconv.Itoa(MaxHistory),
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

// Component is the migration component name of the store on table, as
// recorded in hexeract_schema_migrations.
func Component(table string) string { return "saga:" + table }

// SchemaStep is one schema migration of the store and when it was applied.
type SchemaStep struct {
	Component string
	Version   int
	Name      string
	AppliedAt time.Time // zero while pending
}

// SchemaStatus reports the store's migrations and which are applied.
func (s *PostgresStore) SchemaStatus(ctx context.Context) ([]SchemaStep, error) {
	ms, err := migrations(s.table.String())
	if err != nil {
		return nil, err
	}
	st, err := migrate.Statuses(ctx, s.pool, Component(s.table.String()), ms)
	if err != nil {
		return nil, err
	}
	out := make([]SchemaStep, len(st))
	for i, x := range st {
		out[i] = SchemaStep{Component: x.Component, Version: x.Version, Name: x.Name, AppliedAt: x.AppliedAt}
	}
	return out, nil
}

// Migrate applies the store's pending schema migrations.
func (s *PostgresStore) Migrate(ctx context.Context) error {
	ms, err := migrations(s.table.String())
	if err != nil {
		return err
	}
	if _, err := migrate.Apply(ctx, s.pool, Component(s.table.String()), ms); err != nil {
		return fmt.Errorf("saga: %w", err)
	}
	return nil
}

// Begin takes a connection for a unit of work. The transaction itself
// starts with the first Load, in the same round trip.
//
// When ctx carries the transaction of the inbox middleware ([outbox.Tx]:
// the message is handled behind [outbox.Inbox.Middleware]) on the store's
// database, the unit of work runs inside that transaction under a
// savepoint instead: the transition commits with the inbox claim, or not at
// all, and takes no second connection from the pool.
func (s *PostgresStore) Begin(ctx context.Context) (Tx, error) {
	if ex, ok := outbox.Tx(ctx); ok {
		if outer, ok := postgres.New(s.pool).TxOf(ex); ok && s.sameDatabase(outer.Conn()) {
			return &PostgresTx{s: s, db: outer, pg: outer.Conn().PgConn(), nested: true}, nil
		}
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &PostgresTx{s: s, conn: conn, db: conn, pg: conn.Conn().PgConn()}, nil
}

// sameDatabase reports whether conn is connected to the store's database.
func (s *PostgresStore) sameDatabase(conn *pgx.Conn) bool {
	if conn == nil || conn.IsClosed() {
		return false
	}
	a, b := conn.Config(), s.pool.Config().ConnConfig
	return a.Host == b.Host && a.Port == b.Port && a.Database == b.Database
}

// Get returns one instance with its history (the last [MaxHistory]
// transitions, from the history table).
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
	in := ins[0]
	if in.Meta.History, in.Meta.HistoryDropped, err = s.history(ctx, saga, key); err != nil {
		return nil, err
	}
	return in, nil
}

// history reads the last MaxHistory history rows of an instance, oldest
// first, and how many older transitions are not among them.
func (s *PostgresStore) history(ctx context.Context, saga, key string) ([]HistoryEntry, int, error) {
	rows, err := s.pool.Query(ctx, s.q.history, saga, key)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []HistoryEntry
	var total, oldest int64
	for rows.Next() {
		var e HistoryEntry
		var kind, status string
		if err := rows.Scan(&e.At, &kind, &e.Type, &status, &e.Note, &oldest, &total); err != nil {
			return nil, 0, err
		}
		e.Kind, e.Status = HistoryKind(kind), Status(status)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	slices.Reverse(out)
	// The runtime writes one row per version, so the transitions before
	// the oldest row shown are version-1 of them (trimmed from the table
	// or beyond the limit); rows written otherwise (several for one
	// version) are counted by what the limit left out.
	return out, max(int(total)-len(out), int(oldest)-1), nil
}

// List returns instances matching f, most recently updated first.
func (s *PostgresStore) List(ctx context.Context, f Filter) ([]*Instance, error) {
	rows, err := s.pool.Query(ctx, s.q.list, f.Saga, string(f.Status), f.limit())
	if err != nil {
		return nil, err
	}
	return scanInstances(rows)
}

// Purge deletes instances that finished before before, with their
// history.
func (s *PostgresStore) Purge(ctx context.Context, before time.Time) (int64, error) {
	var n, hist int64
	if err := s.pool.QueryRow(ctx, s.q.purge, before).Scan(&n, &hist); err != nil {
		return 0, err
	}
	return n, nil
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

// DB runs SQL inside the transaction of a transition: saga handlers reach
// it through [Context.Tx] to write their own rows atomically with the
// state and the messages. The runtime commits or rolls back; a handler must
// not. pgx.Tx, *pgx.Conn and *pgxpool.Conn satisfy it.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// PostgresTx is the unit of work of a [PostgresStore]: a transaction on
// one pooled connection, pipelined so that a transition that sends messages
// takes three round trips (BEGIN with the load; the outbox insert; the save
// with the COMMIT) instead of five. Inside the inbox middleware's
// transaction it is a savepoint of that transaction instead (see
// [PostgresStore.Begin]).
type PostgresTx struct {
	s       *PostgresStore
	conn    *pgxpool.Conn  // the pooled connection; nil when nested
	db      DB             // where the SQL goes: conn, or the outer transaction
	pg      *pgconn.PgConn // for the transaction status
	nested  bool           // inside the inbox middleware's transaction
	begun   bool
	pending pgx.Batch // the save, sent with the COMMIT
	done    bool
}

// The statements that open, close and abandon the unit of work: a
// transaction, or a savepoint of the outer transaction when nested.
const (
	savepoint        = "SAVEPOINT hexeract_saga"
	releaseSavepoint = "RELEASE SAVEPOINT hexeract_saga"
	undoSavepoint    = "ROLLBACK TO SAVEPOINT hexeract_saga; RELEASE SAVEPOINT hexeract_saga"
)

func (t *PostgresTx) beginSQL() string {
	if t.nested {
		return savepoint
	}
	return "BEGIN"
}

// DB returns the transaction, for SQL of the handler's own.
func (t *PostgresTx) DB() DB { return t.db }

func (t *PostgresTx) begin(ctx context.Context) error {
	if t.begun {
		return nil
	}
	if _, err := t.db.Exec(ctx, t.beginSQL()); err != nil {
		return err
	}
	t.begun = true
	return nil
}

// Load reads an instance; the first Load also begins the transaction, in
// the same round trip.
func (t *PostgresTx) Load(ctx context.Context, saga, key string) (*Instance, error) {
	in := &Instance{Saga: saga, Key: key}
	var status string
	var meta []byte
	var completed *time.Time
	dest := []any{&status, &in.Version, &in.State, &meta, &in.CreatedAt, &in.UpdatedAt, &completed}
	var err error
	if t.begun {
		err = t.db.QueryRow(ctx, t.s.q.load, saga, key).Scan(dest...)
	} else {
		b := &pgx.Batch{}
		b.Queue(t.beginSQL())
		b.Queue(t.s.q.load, saga, key)
		br := t.db.SendBatch(ctx, b)
		if _, err = br.Exec(); err == nil {
			t.begun = true
			err = br.QueryRow().Scan(dest...)
		}
		if cerr := br.Close(); cerr != nil && (err == nil || errors.Is(err, pgx.ErrNoRows)) {
			err = cerr
		}
	}
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

// metaJSON is the meta column: the bookkeeping without the history, which
// has a table of its own.
func metaJSON(m Meta) ([]byte, error) {
	if len(m.Timeouts) == 0 && len(m.Compensations) == 0 && m.Failure == "" {
		return []byte("{}"), nil
	}
	m.History, m.HistoryDropped = nil, 0
	return json.Marshal(m)
}

// historyJSON is the p_history argument of the save function: the entries
// to append, or nil (SQL NULL) for none.
func historyJSON(h []HistoryEntry) ([]byte, error) {
	if len(h) == 0 {
		return nil, nil
	}
	return json.Marshal(h)
}

func completedAt(in *Instance) *time.Time {
	if in.CompletedAt.IsZero() {
		return nil
	}
	return &in.CompletedAt
}

func (t *PostgresTx) queueSave(ctx context.Context, op string, in *Instance) error {
	if err := t.begin(ctx); err != nil {
		return err
	}
	meta, err := metaJSON(in.Meta)
	if err != nil {
		return err
	}
	state := []byte(in.State)
	if len(state) == 0 {
		state = []byte("null")
	}
	var hist []byte
	if op != "d" {
		if hist, err = historyJSON(in.Meta.History); err != nil {
			return err
		}
	}
	var histArg any // a nil []byte would not be SQL NULL for jsonb
	if hist != nil {
		histArg = string(hist)
	}
	t.pending.Queue(t.s.q.save, op, in.Saga, in.Key, string(in.Status), state, meta, completedAt(in), in.Version, histArg)
	return nil
}

// Insert queues the creation of the instance and appends the entries of
// in.Meta.History to its history table (an instance from [PostgresTx.Load]
// comes without its history, so these are the transition's entries); it is
// sent with the commit,
// which fails with [ErrConflict] when the key was taken meanwhile (a
// concurrent start).
func (t *PostgresTx) Insert(ctx context.Context, in *Instance) error {
	if err := t.queueSave(ctx, "i", in); err != nil {
		return err
	}
	in.Version = 1
	return nil
}

// Update queues the save of in and appends the entries of in.Meta.History
// to the history table, as Insert does; it is sent with the commit, which
// fails with [ErrConflict] when the stored version is no longer in.Version.
func (t *PostgresTx) Update(ctx context.Context, in *Instance) error {
	if err := t.queueSave(ctx, "u", in); err != nil {
		return err
	}
	in.Version++
	return nil
}

// Delete queues the removal of in and its history, with the same version
// check as Update.
func (t *PostgresTx) Delete(ctx context.Context, in *Instance) error {
	return t.queueSave(ctx, "d", in)
}

// Commit sends the queued saves and the COMMIT in one round trip. A
// version conflict (or a serialization failure or deadlock) aborts the
// transaction, so nothing of it is committed, and is reported as
// [ErrConflict].
func (t *PostgresTx) Commit(ctx context.Context) error {
	if t.done {
		return errors.New("saga: transaction already finished")
	}
	if !t.begun {
		t.finish()
		return nil
	}
	end, after := "COMMIT", byte('I')
	if t.nested {
		end, after = releaseSavepoint, 'T'
	}
	t.pending.Queue(end)
	n := t.pending.Len()
	br := t.db.SendBatch(ctx, &t.pending)
	var err error
	for range n {
		if _, err = br.Exec(); err != nil {
			break
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil && t.pg.TxStatus() != after {
		err = fmt.Errorf("saga: %s did not end the unit of work", end)
	}
	if err != nil {
		t.rollback(ctx)
		t.finish()
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01") {
			return fmt.Errorf("saga: %s: %w", pgErr.Message, ErrConflict)
		}
		return err
	}
	t.finish()
	return nil
}

// Rollback abandons the transaction; after Commit it does nothing.
func (t *PostgresTx) Rollback(ctx context.Context) error {
	if t.done {
		return nil
	}
	t.rollback(ctx)
	t.finish()
	return nil
}

// rollback ends an open transaction. When that fails (a broken
// connection), the pool destroys the connection on release because it is
// not idle. Nested, it undoes the savepoint and leaves the outer
// transaction usable.
func (t *PostgresTx) rollback(ctx context.Context) {
	switch {
	case t.nested && t.begun:
		_, _ = t.db.Exec(context.WithoutCancel(ctx), undoSavepoint)
	case !t.nested && t.pg.TxStatus() != 'I':
		_, _ = t.db.Exec(context.WithoutCancel(ctx), "ROLLBACK")
	}
}

func (t *PostgresTx) finish() {
	t.done = true
	if t.conn != nil {
		t.conn.Release()
	}
}
