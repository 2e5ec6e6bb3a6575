package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hexeract/hexeract/internal/sqlident"
	"github.com/hexeract/hexeract/store"
)

// DefaultTable is the table of the SQL store when none is configured.
const DefaultTable = "hexeract_sagas"

// SQLStore is the [Store] on a storage driver (PostgreSQL, MySQL/MariaDB or
// SQLite; see package store): one row per instance in a table (default
// [DefaultTable]) with the state as JSON and a version column for
// optimistic concurrency, and the history of transitions in
// <table>_history. Its units of work are transactions of the driver, in
// which the saga runtime also writes the outgoing messages (through the
// outbox) and the timeouts (through the scheduler), so a transition and
// its messages commit together or not at all.
//
// Build it with [NewSQLStore]; it touches the database only when used.
// Create or upgrade its tables with [SQLStore.Migrate] (or "hexeract
// migrate up") before the first transition.
type SQLStore struct {
	st   store.Store
	t    store.SagaTable
	name sqlident.Name
}

// SQLOption configures [NewSQLStore].
type SQLOption func(*sqlConfig)

type sqlConfig struct {
	table string
}

// WithTable sets the table name (a plain SQL name of lower-case letters,
// digits and underscores; on PostgreSQL also schema.table and on MySQL
// database.table). The default is [DefaultTable].
func WithTable(name string) SQLOption { return func(c *sqlConfig) { c.table = name } }

// NewSQLStore returns a saga store on st (any driver, for example
// postgres.New(pool), mysql.Open or sqlite.Open, or what storeurl.Open
// returns). It does not touch the database: call [SQLStore.Migrate] (or
// run "hexeract migrate up") to create its tables.
func NewSQLStore(st store.Store, opts ...SQLOption) (*SQLStore, error) {
	if st == nil {
		return nil, errors.New("saga: NewSQLStore needs a store (a storage driver)")
	}
	cfg := sqlConfig{table: DefaultTable}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if err := CheckTable(cfg.table); err != nil {
		return nil, err
	}
	name, _ := sqlident.Parse(cfg.table)
	switch st.Dialect() {
	case store.SQLite:
		if name.Schema != "" {
			return nil, fmt.Errorf("saga: table name %q: SQLite has no schemas; use a plain table name", cfg.table)
		}
	}
	return &SQLStore{st: st, t: store.SagaTable{Schema: name.Schema, Table: name.Table}, name: name}, nil
}

// CheckTable validates a store table name (and the names derived from it:
// <table>_history, <table>_save, <table>_done_idx) without touching a
// database.
func CheckTable(table string) error {
	name, err := sqlident.Parse(table)
	if err != nil {
		return fmt.Errorf("saga: table name: %w", err)
	}
	if _, err := name.Derive("_save"); err != nil {
		return fmt.Errorf("saga: table name %q is too long for its save function name: %w", table, err)
	}
	if _, err := sqlident.Parse(name.Table + "_done_idx"); err != nil {
		return fmt.Errorf("saga: table name %q is too long for its index names: %w", table, err)
	}
	return nil
}

// Table returns the store's table name.
func (s *SQLStore) Table() string { return s.name.String() }

// Driver returns the storage driver the store is on.
func (s *SQLStore) Driver() store.Store { return s.st }

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

func (s *SQLStore) migrations() ([]store.Migration, error) {
	ms, err := s.st.Executor().SagaMigrations(s.t)
	if err != nil {
		return nil, fmt.Errorf("saga: %w", err)
	}
	return ms, nil
}

// Migrate creates or upgrades the store's tables: it applies the driver's
// pending migrations of the store, under the driver's migration lock, so
// concurrent migrators are safe.
func (s *SQLStore) Migrate(ctx context.Context) error {
	ms, err := s.migrations()
	if err != nil {
		return err
	}
	if _, err := s.st.Migrate(ctx, s.t.Component(), ms); err != nil {
		return fmt.Errorf("saga: %w", err)
	}
	return nil
}

// SchemaStatus reports the store's migrations and which are applied. It
// changes nothing in the database.
func (s *SQLStore) SchemaStatus(ctx context.Context) ([]SchemaStep, error) {
	ms, err := s.migrations()
	if err != nil {
		return nil, err
	}
	st, err := s.st.MigrationStatus(ctx, s.t.Component(), ms)
	if err != nil {
		return nil, err
	}
	out := make([]SchemaStep, len(st))
	for i, x := range st {
		out[i] = SchemaStep{Component: x.Component, Version: x.Version, Name: x.Name, AppliedAt: x.AppliedAt}
	}
	return out, nil
}

// Begin starts a unit of work: a transaction of the driver (see
// [store.SagaExecutor.SagaBegin]).
//
// When ctx carries the transaction of the inbox middleware (the message is
// handled behind the outbox package's Inbox.Middleware) on the store's
// database, the unit of work runs inside that transaction under a
// savepoint instead: the transition commits with the inbox claim, or not at
// all, and takes no second connection from the pool.
func (s *SQLStore) Begin(ctx context.Context) (Tx, error) {
	if outer, ok := inboxTx(ctx); ok {
		ex, ok, err := outer.SagaNest(ctx, s.st)
		if err != nil {
			return nil, err
		}
		if ok {
			return &sqlTx{s: s, ex: ex}, nil
		}
	}
	ex, err := s.st.Executor().SagaBegin(ctx)
	if err != nil {
		return nil, err
	}
	return &sqlTx{s: s, ex: ex}, nil
}

// Get returns one instance with its history (the last [MaxHistory]
// transitions).
func (s *SQLStore) Get(ctx context.Context, saga, key string) (*Instance, error) {
	row, hist, total, found, err := s.st.Executor().SagaGet(ctx, s.t, saga, key, MaxHistory)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("saga %s key %q: %w", saga, key, ErrNotFound)
	}
	in, err := fromRow(row)
	if err != nil {
		return nil, err
	}
	for _, h := range hist {
		in.Meta.History = append(in.Meta.History, HistoryEntry{At: h.At, Kind: HistoryKind(h.Kind), Type: h.Type, Status: Status(h.Status), Note: h.Note})
	}
	in.Meta.HistoryDropped = 0
	if len(hist) > 0 {
		// The runtime writes one entry per version, so the transitions
		// before the oldest entry kept are its version-1; entries written
		// otherwise (several for one version) are counted by what the
		// limit left out.
		in.Meta.HistoryDropped = max(int(total)-len(hist), int(hist[0].Version)-1)
	}
	return in, nil
}

// List returns instances matching f, most recently updated first.
func (s *SQLStore) List(ctx context.Context, f Filter) ([]*Instance, error) {
	rows, err := s.st.Executor().SagaList(ctx, s.t, store.SagaFilter{Saga: f.Saga, Status: string(f.Status), Limit: f.limit()})
	if err != nil {
		return nil, err
	}
	out := make([]*Instance, 0, len(rows))
	for _, r := range rows {
		in, err := fromRow(r)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}

// Purge deletes instances that finished before before, with their
// history.
func (s *SQLStore) Purge(ctx context.Context, before time.Time) (int64, error) {
	return s.st.Executor().SagaPurge(ctx, s.t, before)
}

func fromRow(r store.SagaRow) (*Instance, error) {
	in := &Instance{Saga: r.Saga, Key: r.Key, Status: Status(r.Status), Version: r.Version, State: json.RawMessage(r.State),
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, CompletedAt: r.CompletedAt}
	if len(r.Meta) > 2 { // "{}" is the common case
		if err := json.Unmarshal(r.Meta, &in.Meta); err != nil {
			return nil, fmt.Errorf("saga %s key %q: bad meta column: %w", r.Saga, r.Key, err)
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

func toRow(in *Instance) (store.SagaRow, []store.SagaHistoryRow, error) {
	meta, err := metaJSON(in.Meta)
	if err != nil {
		return store.SagaRow{}, nil, err
	}
	row := store.SagaRow{Saga: in.Saga, Key: in.Key, Status: string(in.Status), Version: in.Version,
		State: in.State, Meta: meta, CompletedAt: in.CompletedAt}
	var hist []store.SagaHistoryRow
	if n := len(in.Meta.History); n > 0 {
		hist = make([]store.SagaHistoryRow, n)
		for i, h := range in.Meta.History {
			hist[i] = store.SagaHistoryRow{At: h.At, Kind: string(h.Kind), Type: h.Type, Status: string(h.Status), Note: h.Note}
		}
	}
	return row, hist, nil
}

// sqlTx is the unit of work of an [SQLStore]: a transaction of its
// driver, or a savepoint of the inbox middleware's transaction.
type sqlTx struct {
	s    *SQLStore
	ex   store.ExecutorTx
	done bool
}

// conflict turns the driver's store.ErrSagaConflict into ErrConflict.
func conflict(err error) error {
	if err != nil && errors.Is(err, store.ErrSagaConflict) && !errors.Is(err, ErrConflict) {
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return err
}

func (t *sqlTx) Executor() store.ExecutorTx { return t.ex }

func (t *sqlTx) Load(ctx context.Context, saga, key string) (*Instance, error) {
	row, found, err := t.ex.SagaLoad(ctx, t.s.t, saga, key)
	if err != nil {
		return nil, conflict(err)
	}
	if !found {
		return nil, fmt.Errorf("saga %s key %q: %w", saga, key, ErrNotFound)
	}
	return fromRow(row)
}

// Insert creates the instance and appends the entries of in.Meta.History
// to its history (an instance from Load comes without its history, so
// these are the transition's entries). A taken key (a concurrent start)
// fails with [ErrConflict], here or at Commit.
func (t *sqlTx) Insert(ctx context.Context, in *Instance) error {
	row, hist, err := toRow(in)
	if err != nil {
		return err
	}
	if err := t.ex.SagaInsert(ctx, t.s.t, row, hist); err != nil {
		return conflict(err)
	}
	in.Version = 1
	return nil
}

// Update saves in and appends the entries of in.Meta.History, as Insert
// does; it fails with [ErrConflict] (here or at Commit) when the stored
// version is no longer in.Version.
func (t *sqlTx) Update(ctx context.Context, in *Instance) error {
	row, hist, err := toRow(in)
	if err != nil {
		return err
	}
	if err := t.ex.SagaUpdate(ctx, t.s.t, row, hist); err != nil {
		return conflict(err)
	}
	in.Version++
	return nil
}

// Delete removes in and its history, with the same version check.
func (t *sqlTx) Delete(ctx context.Context, in *Instance) error {
	return conflict(t.ex.SagaDelete(ctx, t.s.t, in.Saga, in.Key, in.Version))
}

func (t *sqlTx) Commit(ctx context.Context) error {
	if t.done {
		return errors.New("saga: transaction already finished")
	}
	t.done = true
	return conflict(t.ex.Commit(ctx))
}

func (t *sqlTx) Rollback(ctx context.Context) error {
	if t.done {
		return nil
	}
	t.done = true
	return t.ex.Rollback(ctx)
}
