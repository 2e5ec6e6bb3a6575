package postgres

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hexeract/hexeract/internal/sqlident"
	"github.com/hexeract/hexeract/store"
)

//go:embed migrations/saga_*.sql
var sagaMigrationFiles embed.FS

// sagaNames are the quoted names of one saga store's objects.
type sagaNames struct {
	table, history, save, done string
}

func sagaNamesOf(t store.SagaTable) (sagaNames, error) {
	n := sqlident.Name{Schema: t.Schema, Table: t.Table}
	fn, err := n.Derive("_save")
	if err != nil {
		return sagaNames{}, fmt.Errorf("saga table name %q is too long for its save function name: %w", n, err)
	}
	hist, err := n.Derive("_history")
	if err != nil {
		return sagaNames{}, fmt.Errorf("saga table name %q is too long for its history table name: %w", n, err)
	}
	done, err := sqlident.Parse(t.Table + "_done_idx")
	if err != nil {
		return sagaNames{}, fmt.Errorf("saga table name %q is too long for its index names: %w", n, err)
	}
	return sagaNames{table: n.Quoted(), history: hist.Quoted(), save: fn.Quoted(), done: done.Quoted()}, nil
}

// SagaMigrations returns the saga store's migrations: the versions and
// names of the saga package's PostgreSQL store before the storage seam,
// so an existing database is current, plus the later ones.
func (e *executor) SagaMigrations(t store.SagaTable) ([]store.Migration, error) {
	n, err := sagaNamesOf(t)
	if err != nil {
		return nil, err
	}
	data := map[string]string{
		"Table": n.table, "CompletedIndex": n.done, "SaveFunc": n.save,
		"History": n.history, "MaxHistory": strconv.Itoa(store.SagaHistoryKeep),
	}
	paths, err := fs.Glob(sagaMigrationFiles, "migrations/saga_*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	out := make([]store.Migration, 0, len(paths))
	for _, path := range paths {
		base := strings.TrimSuffix(strings.TrimPrefix(path, "migrations/saga_"), ".sql")
		num, name, _ := strings.Cut(base, "_")
		version, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("postgres: migration file %s: %w", path, err)
		}
		text, err := sagaMigrationFiles.ReadFile(path)
		if err != nil {
			return nil, err
		}
		tmpl, err := template.New(path).Option("missingkey=error").Parse(string(text))
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, data); err != nil {
			return nil, err
		}
		out = append(out, store.Migration{Version: version, Name: name, SQL: buf.String()})
	}
	return out, nil
}

// SagaBegin takes a connection for a transition's transaction; BEGIN is
// sent with the first load and the saves with the COMMIT (see lazyTx).
func (e *executor) SagaBegin(ctx context.Context) (store.ExecutorTx, error) {
	conn, err := e.d.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	t := &lazyTx{conn: conn}
	return &executor{d: e.d, db: t, tx: t}, nil
}

// SagaNest returns a savepoint of this transaction when st is a
// PostgreSQL driver on the same database (host, port, database and
// search_path).
func (e *executor) SagaNest(ctx context.Context, st store.Store) (store.ExecutorTx, bool, error) {
	d, ok := st.(*Driver)
	if !ok || e.tx == nil {
		return nil, false, nil
	}
	conn := e.tx.Conn()
	if conn == nil || conn.IsClosed() {
		return nil, false, nil
	}
	a, b := conn.Config(), d.pool.Config().ConnConfig
	if a.Host != b.Host || a.Port != b.Port || a.Database != b.Database ||
		a.RuntimeParams["search_path"] != b.RuntimeParams["search_path"] {
		return nil, false, nil
	}
	sp, err := e.tx.Begin(ctx) // a savepoint: Commit releases it, Rollback undoes it
	if err != nil {
		return nil, false, err
	}
	return &executor{d: d, db: sp, tx: sp}, true, nil
}

// lazyRow is the row of a lazyTx's first query, sent with BEGIN.
type lazyRow struct {
	lt   *lazyTx
	ctx  context.Context
	sql  string
	args []any
}

func (r lazyRow) Scan(dest ...any) error { return r.lt.queryRowFirst(r.ctx, r.sql, r.args, dest...) }

const sagaColumns = `saga, key, status, version, state, meta, created_at, updated_at, completed_at`

func scanSagaRow(row pgx.Row) (store.SagaRow, error) {
	var r store.SagaRow
	var completed *time.Time
	if err := row.Scan(&r.Saga, &r.Key, &r.Status, &r.Version, &r.State, &r.Meta, &r.CreatedAt, &r.UpdatedAt, &completed); err != nil {
		return r, err
	}
	if completed != nil {
		r.CompletedAt = *completed
	}
	return r, nil
}

// SagaLoad reads one instance without its history.
func (e *executor) SagaLoad(ctx context.Context, t store.SagaTable, saga, key string) (store.SagaRow, bool, error) {
	n, err := sagaNamesOf(t)
	if err != nil {
		return store.SagaRow{}, false, err
	}
	q := `SELECT ` + sagaColumns + ` FROM ` + n.table + ` WHERE saga = $1 AND key = $2`
	var r store.SagaRow
	if lt, ok := e.db.(*lazyTx); ok && !lt.begun && len(lt.pending) == 0 {
		r, err = scanSagaRow(lazyRow{lt: lt, ctx: ctx, sql: q, args: []any{saga, key}})
	} else {
		r, err = scanSagaRow(e.db.QueryRow(ctx, q, saga, key))
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return store.SagaRow{}, false, nil
	}
	return r, err == nil, sagaErr(err)
}

// sagaErr wraps serialization failures and deadlocks in
// store.ErrSagaConflict.
func sagaErr(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01") {
		return fmt.Errorf("%s: %w", pgErr.Message, store.ErrSagaConflict)
	}
	return err
}

type sagaHistoryJSON struct {
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"`
	Type   string    `json:"type"`
	Status string    `json:"status"`
	Note   string    `json:"note,omitempty"`
}

// save calls the store's save function, which raises
// serialization_failure when the instance changed since it was read.
func (e *executor) sagaSave(ctx context.Context, t store.SagaTable, op string, r store.SagaRow, history []store.SagaHistoryRow) error {
	n, err := sagaNamesOf(t)
	if err != nil {
		return err
	}
	state, meta := string(r.State), string(r.Meta)
	if state == "" {
		state = "null"
	}
	if meta == "" {
		meta = "{}"
	}
	var hist any // nil is SQL NULL
	if len(history) > 0 {
		h := make([]sagaHistoryJSON, len(history))
		for i, x := range history {
			h[i] = sagaHistoryJSON{At: x.At, Kind: x.Kind, Type: x.Type, Status: x.Status, Note: x.Note}
		}
		b, err := json.Marshal(h)
		if err != nil {
			return err
		}
		hist = string(b)
	}
	var completed *time.Time
	if !r.CompletedAt.IsZero() {
		completed = &r.CompletedAt
	}
	q := `SELECT ` + n.save + `($1, $2, $3, $4, $5, $6, $7, $8, $9)`
	if lt, ok := e.db.(*lazyTx); ok && !lt.done {
		lt.queue(q, op, r.Saga, r.Key, r.Status, state, meta, completed, r.Version, hist) // sent with the COMMIT
		return nil
	}
	_, err = e.db.Exec(ctx, q, op, r.Saga, r.Key, r.Status, state, meta, completed, r.Version, hist)
	return sagaErr(err)
}

// SagaInsert creates the instance; a taken key raises serialization_failure.
func (e *executor) SagaInsert(ctx context.Context, t store.SagaTable, r store.SagaRow, history []store.SagaHistoryRow) error {
	r.Version = 0
	return e.sagaSave(ctx, t, "i", r, history)
}

// SagaUpdate saves the instance if its version is still r.Version.
func (e *executor) SagaUpdate(ctx context.Context, t store.SagaTable, r store.SagaRow, history []store.SagaHistoryRow) error {
	return e.sagaSave(ctx, t, "u", r, history)
}

// SagaDelete removes the instance and its history if its version is still
// version.
func (e *executor) SagaDelete(ctx context.Context, t store.SagaTable, saga, key string, version int64) error {
	return e.sagaSave(ctx, t, "d", store.SagaRow{Saga: saga, Key: key, Version: version}, nil)
}

// SagaGet reads one instance with the last limit entries of its history.
func (e *executor) SagaGet(ctx context.Context, t store.SagaTable, saga, key string, limit int) (store.SagaRow, []store.SagaHistoryRow, int64, bool, error) {
	n, err := sagaNamesOf(t)
	if err != nil {
		return store.SagaRow{}, nil, 0, false, err
	}
	r, err := scanSagaRow(e.db.QueryRow(ctx, `SELECT `+sagaColumns+` FROM `+n.table+` WHERE saga = $1 AND key = $2`, saga, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.SagaRow{}, nil, 0, false, nil
	}
	if err != nil {
		return r, nil, 0, false, err
	}
	rows, err := e.db.Query(ctx, `SELECT version, at, kind, type, status, coalesce(note, ''), count(*) OVER () FROM `+n.history+
		` WHERE saga = $1 AND key = $2 ORDER BY seq DESC LIMIT $3`, saga, key, limit)
	if err != nil {
		return r, nil, 0, true, err
	}
	defer rows.Close()
	var hist []store.SagaHistoryRow
	var total int64
	for rows.Next() {
		var h store.SagaHistoryRow
		if err := rows.Scan(&h.Version, &h.At, &h.Kind, &h.Type, &h.Status, &h.Note, &total); err != nil {
			return r, nil, 0, true, err
		}
		hist = append(hist, h)
	}
	if err := rows.Err(); err != nil {
		return r, nil, 0, true, err
	}
	slices.Reverse(hist)
	return r, hist, total, true, nil
}

// SagaList returns instances matching f, most recently updated first.
func (e *executor) SagaList(ctx context.Context, t store.SagaTable, f store.SagaFilter) ([]store.SagaRow, error) {
	n, err := sagaNamesOf(t)
	if err != nil {
		return nil, err
	}
	rows, err := e.db.Query(ctx, `SELECT `+sagaColumns+` FROM `+n.table+
		` WHERE ($1 = '' OR saga = $1) AND ($2 = '' OR status = $2) ORDER BY updated_at DESC, key LIMIT $3`,
		f.Saga, f.Status, max(f.Limit, 1))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.SagaRow
	for rows.Next() {
		r, err := scanSagaRow(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// SagaPurge deletes the instances that finished before before, with
// their history, in one statement.
func (e *executor) SagaPurge(ctx context.Context, t store.SagaTable, before time.Time) (int64, error) {
	n, err := sagaNamesOf(t)
	if err != nil {
		return 0, err
	}
	var deleted, hist int64
	err = e.db.QueryRow(ctx, `WITH d AS (DELETE FROM `+n.table+` WHERE completed_at IS NOT NULL AND completed_at < $1 RETURNING saga, key),
h AS (DELETE FROM `+n.history+` x USING d WHERE x.saga = d.saga AND x.key = d.key RETURNING 1)
SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM h)`, before).Scan(&deleted, &hist)
	return deleted, err
}
