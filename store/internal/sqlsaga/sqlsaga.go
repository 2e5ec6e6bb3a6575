// Package sqlsaga is the saga store of the database/sql drivers
// (MySQL/MariaDB and SQLite): one implementation, with the few places
// where the dialects differ (quoting, time encoding, DDL, error codes)
// chosen by [Dialect].
//
// Optimistic concurrency: an update is "UPDATE ... WHERE version = <read>"
// and fails with store.ErrSagaConflict when it changes no row; an insert
// of a taken key fails on the primary key. The history is appended and
// trimmed to the last store.SagaHistoryKeep entries in the same
// transaction as the state, as store.SagaHistoryKeep says.
package sqlsaga

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/internal/sqlexec"
)

// Dialect is what differs between the drivers.
type Dialect struct {
	// SQLite selects SQLite's SQL; MySQL/MariaDB otherwise.
	SQLite bool
	// DB is the driver's pool, for the transactions begun here.
	DB *sql.DB
	// TxOptions are the options of the transactions begun here.
	TxOptions *sql.TxOptions
	// Conflict reports whether err is a duplicate key, a deadlock or a
	// serialization failure: a lost optimistic-concurrency race.
	Conflict func(err error) bool
}

// Names are the quoted names of one saga store's tables and indexes.
type Names struct {
	Table, History, DoneIdx string
}

func (d Dialect) quote(schema, name string) string {
	if d.SQLite {
		return `"` + name + `"`
	}
	if schema == "" {
		return "`" + name + "`"
	}
	return "`" + schema + "`.`" + name + "`"
}

// SagaNames quotes the names of t's tables. Index names are not
// schema-qualified (MySQL's live in their table; SQLite has no schemas).
func (d Dialect) SagaNames(t store.SagaTable) Names {
	q := func(n string) string {
		if d.SQLite {
			return `"` + n + `"`
		}
		return "`" + n + "`"
	}
	return Names{
		Table: d.quote(t.Schema, t.Table), History: d.quote(t.Schema, t.Table+"_history"),
		DoneIdx: q(t.Table + "_done_idx"),
	}
}

// ts encodes an instant: unix microseconds on SQLite, a UTC time on MySQL.
func (d Dialect) ts(t time.Time) any {
	if d.SQLite {
		return t.UnixMicro()
	}
	return t.UTC()
}

// nullTS encodes an optional instant (zero is NULL).
func (d Dialect) nullTS(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return d.ts(t)
}

// fromTS decodes what ts stored; NULL is the zero time.
func fromTS(v any) time.Time {
	switch x := v.(type) {
	case int64:
		return time.UnixMicro(x).UTC()
	case time.Time:
		return x.UTC()
	case []byte:
		if t, err := time.Parse("2006-01-02 15:04:05.999999", string(x)); err == nil {
			return t
		}
	}
	return time.Time{}
}

// SagaMigrations returns the saga tables' migrations.
func (d Dialect) SagaMigrations(t store.SagaTable) []store.Migration {
	n := d.SagaNames(t)
	if d.SQLite {
		return []store.Migration{{Version: 1, Name: "create", SQL: `CREATE TABLE IF NOT EXISTS ` + n.Table + ` (
	saga         TEXT    NOT NULL,
	"key"        TEXT    NOT NULL,
	status       TEXT    NOT NULL,
	version      INTEGER NOT NULL,
	state        TEXT    NOT NULL,
	meta         TEXT    NOT NULL DEFAULT '{}',
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL,
	completed_at INTEGER,
	PRIMARY KEY (saga, "key")
)
` + sqlexec.StepSeparator + `
CREATE INDEX IF NOT EXISTS ` + n.DoneIdx + ` ON ` + n.Table + ` (completed_at) WHERE completed_at IS NOT NULL
` + sqlexec.StepSeparator + `
CREATE TABLE IF NOT EXISTS ` + n.History + ` (
	saga    TEXT    NOT NULL,
	"key"   TEXT    NOT NULL,
	version INTEGER NOT NULL,
	idx     INTEGER NOT NULL, -- the entry's place among those of its save
	at      INTEGER NOT NULL,
	kind    TEXT    NOT NULL,
	type    TEXT    NOT NULL,
	status  TEXT    NOT NULL,
	note    TEXT,
	PRIMARY KEY (saga, "key", version, idx)
) WITHOUT ROWID`}}
	}
	return []store.Migration{{Version: 1, Name: "create", SQL: `CREATE TABLE IF NOT EXISTS ` + n.Table + ` (
	saga         VARCHAR(255) NOT NULL,
	` + "`key`" + `        VARCHAR(255) NOT NULL,
	status       VARCHAR(32)  NOT NULL,
	version      BIGINT       NOT NULL,
	state        LONGTEXT     NOT NULL,
	meta         LONGTEXT     NOT NULL,
	created_at   DATETIME(6)  NOT NULL,
	updated_at   DATETIME(6)  NOT NULL,
	completed_at DATETIME(6)  NULL,
	PRIMARY KEY (saga, ` + "`key`" + `),
	KEY ` + n.DoneIdx + ` (completed_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
` + sqlexec.StepSeparator + `
CREATE TABLE IF NOT EXISTS ` + n.History + ` (
	saga    VARCHAR(255) NOT NULL,
	` + "`key`" + `   VARCHAR(255) NOT NULL,
	version BIGINT       NOT NULL,
	idx     INT          NOT NULL, -- the entry's place among those of its save
	at      DATETIME(6)  NOT NULL,
	kind    VARCHAR(32)  NOT NULL,
	type    VARCHAR(255) NOT NULL,
	status  VARCHAR(32)  NOT NULL,
	note    TEXT         NULL,
	PRIMARY KEY (saga, ` + "`key`" + `, version, idx)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`}}
}

const columns = `saga, "key", status, version, state, meta, created_at, updated_at, completed_at`

// cols returns columns in the dialect's quoting.
func (d Dialect) cols() string {
	if d.SQLite {
		return columns
	}
	return strings.ReplaceAll(columns, `"key"`, "`key`")
}

// sql puts the dialect's identifier quote in place of the double quotes of
// q.
func (d Dialect) sql(q string) string {
	if d.SQLite {
		return q
	}
	return strings.ReplaceAll(q, `"key"`, "`key`")
}

func (d Dialect) conflict(err error, what string) error {
	if err != nil && d.Conflict != nil && d.Conflict(err) {
		return fmt.Errorf("%s: %v: %w", what, err, store.ErrSagaConflict)
	}
	return err
}

type scanner interface{ Scan(dest ...any) error }

func scanRow(s scanner) (store.SagaRow, error) {
	var r store.SagaRow
	var state, meta string
	var created, updated, completed any
	if err := s.Scan(&r.Saga, &r.Key, &r.Status, &r.Version, &state, &meta, &created, &updated, &completed); err != nil {
		return r, err
	}
	r.State, r.Meta = []byte(state), []byte(meta)
	r.CreatedAt, r.UpdatedAt, r.CompletedAt = fromTS(created), fromTS(updated), fromTS(completed)
	return r, nil
}

// Load reads one instance without its history.
func (d Dialect) Load(ctx context.Context, q sqlexec.Querier, t store.SagaTable, saga, key string) (store.SagaRow, bool, error) {
	n := d.SagaNames(t)
	r, err := scanRow(q.QueryRowContext(ctx, `SELECT `+d.cols()+` FROM `+n.Table+d.sql(` WHERE saga = ? AND "key" = ?`), saga, key))
	if errors.Is(err, sql.ErrNoRows) {
		return store.SagaRow{}, false, nil
	}
	return r, err == nil, d.conflict(err, "saga load")
}

func text(b []byte, def string) string {
	if len(b) == 0 {
		return def
	}
	return string(b)
}

// Insert creates the instance with version 1 and appends its history.
func (d Dialect) Insert(ctx context.Context, q sqlexec.Querier, t store.SagaTable, r store.SagaRow, history []store.SagaHistoryRow) error {
	n := d.SagaNames(t)
	now := d.ts(time.Now())
	_, err := q.ExecContext(ctx, `INSERT INTO `+n.Table+` (`+d.cols()+`) VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?)`,
		r.Saga, r.Key, r.Status, text(r.State, "null"), text(r.Meta, "{}"), now, now, d.nullTS(r.CompletedAt))
	if err != nil {
		return d.conflict(err, fmt.Sprintf("saga %s key %q: insert", r.Saga, r.Key))
	}
	return d.appendHistory(ctx, q, n, r.Saga, r.Key, 1, history)
}

// Update saves r if its stored version is still r.Version.
func (d Dialect) Update(ctx context.Context, q sqlexec.Querier, t store.SagaTable, r store.SagaRow, history []store.SagaHistoryRow) error {
	n := d.SagaNames(t)
	res, err := q.ExecContext(ctx, `UPDATE `+n.Table+d.sql(` SET status = ?, version = version + 1, state = ?, meta = ?, completed_at = ?, updated_at = ?
WHERE saga = ? AND "key" = ? AND version = ?`),
		r.Status, text(r.State, "null"), text(r.Meta, "{}"), d.nullTS(r.CompletedAt), d.ts(time.Now()), r.Saga, r.Key, r.Version)
	if err != nil {
		return d.conflict(err, fmt.Sprintf("saga %s key %q: update", r.Saga, r.Key))
	}
	if k, err := res.RowsAffected(); err != nil {
		return err
	} else if k == 0 {
		return fmt.Errorf("saga %s key %q: version %d is not the stored one: %w", r.Saga, r.Key, r.Version, store.ErrSagaConflict)
	}
	return d.appendHistory(ctx, q, n, r.Saga, r.Key, r.Version+1, history)
}

// appendHistory writes the entries of one save; at a version that is a
// multiple of store.SagaHistoryKeep it deletes the entries of the versions
// before the last store.SagaHistoryKeep.
func (d Dialect) appendHistory(ctx context.Context, q sqlexec.Querier, n Names, saga, key string, version int64, history []store.SagaHistoryRow) error {
	if len(history) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString(`INSERT INTO ` + n.History + d.sql(` (saga, "key", version, idx, at, kind, type, status, note) VALUES `))
	args := make([]any, 0, 9*len(history))
	for i, h := range history {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?)")
		var note any
		if h.Note != "" {
			note = h.Note
		}
		args = append(args, saga, key, version, i, d.ts(h.At), h.Kind, h.Type, h.Status, note)
	}
	if _, err := q.ExecContext(ctx, b.String(), args...); err != nil {
		return d.conflict(err, "saga history")
	}
	if version%store.SagaHistoryKeep != 0 {
		return nil
	}
	_, err := q.ExecContext(ctx, `DELETE FROM `+n.History+d.sql(` WHERE saga = ? AND "key" = ? AND version <= ?`),
		saga, key, version-store.SagaHistoryKeep)
	return d.conflict(err, "saga history trim")
}

// Delete removes the instance and its history if its stored version is
// still version.
func (d Dialect) Delete(ctx context.Context, q sqlexec.Querier, t store.SagaTable, saga, key string, version int64) error {
	n := d.SagaNames(t)
	res, err := q.ExecContext(ctx, `DELETE FROM `+n.Table+d.sql(` WHERE saga = ? AND "key" = ? AND version = ?`), saga, key, version)
	if err != nil {
		return d.conflict(err, fmt.Sprintf("saga %s key %q: delete", saga, key))
	}
	if k, err := res.RowsAffected(); err != nil {
		return err
	} else if k == 0 {
		return fmt.Errorf("saga %s key %q: version %d is not the stored one: %w", saga, key, version, store.ErrSagaConflict)
	}
	_, err = q.ExecContext(ctx, `DELETE FROM `+n.History+d.sql(` WHERE saga = ? AND "key" = ?`), saga, key)
	return d.conflict(err, "saga history delete")
}

// Get reads one instance with the last limit entries of its history.
func (d Dialect) Get(ctx context.Context, q sqlexec.Querier, t store.SagaTable, saga, key string, limit int) (store.SagaRow, []store.SagaHistoryRow, int64, bool, error) {
	r, found, err := d.Load(ctx, q, t, saga, key)
	if err != nil || !found {
		return r, nil, 0, found, err
	}
	n := d.SagaNames(t)
	rows, err := q.QueryContext(ctx, `SELECT version, at, kind, type, status, COALESCE(note, ''), COUNT(*) OVER () FROM `+n.History+
		d.sql(` WHERE saga = ? AND "key" = ? ORDER BY version DESC, idx DESC LIMIT ?`), saga, key, limit)
	if err != nil {
		return r, nil, 0, true, err
	}
	defer func() { _ = rows.Close() }()
	var hist []store.SagaHistoryRow
	var total int64
	for rows.Next() {
		var h store.SagaHistoryRow
		var at any
		if err := rows.Scan(&h.Version, &at, &h.Kind, &h.Type, &h.Status, &h.Note, &total); err != nil {
			return r, nil, 0, true, err
		}
		h.At = fromTS(at)
		hist = append(hist, h)
	}
	if err := rows.Err(); err != nil {
		return r, nil, 0, true, err
	}
	slices.Reverse(hist)
	return r, hist, total, true, nil
}

// List returns instances matching f, most recently updated first.
func (d Dialect) List(ctx context.Context, q sqlexec.Querier, t store.SagaTable, f store.SagaFilter) ([]store.SagaRow, error) {
	n := d.SagaNames(t)
	rows, err := q.QueryContext(ctx, `SELECT `+d.cols()+` FROM `+n.Table+
		d.sql(` WHERE (? = '' OR saga = ?) AND (? = '' OR status = ?) ORDER BY updated_at DESC, "key" LIMIT ?`),
		f.Saga, f.Saga, f.Status, f.Status, max(f.Limit, 1))
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var out []store.SagaRow
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Purge deletes the instances that finished before before, with their
// history, in one transaction (tx when the caller is in one).
func (d Dialect) Purge(ctx context.Context, tx *sql.Tx, t store.SagaTable, before time.Time) (int64, error) {
	n := d.SagaNames(t)
	var deleted int64
	run := func(ctx context.Context, tx *sql.Tx) error {
		var hist string
		if d.SQLite {
			hist = `DELETE FROM ` + n.History + ` WHERE EXISTS (SELECT 1 FROM ` + n.Table + ` s WHERE s.saga = ` + n.History + `.saga AND s."key" = ` + n.History + `."key"
	AND s.completed_at IS NOT NULL AND s.completed_at < ?)`
		} else {
			hist = `DELETE h FROM ` + n.History + ` h JOIN ` + n.Table + " s ON s.saga = h.saga AND s.`key` = h.`key` WHERE s.completed_at IS NOT NULL AND s.completed_at < ?"
		}
		if _, err := tx.ExecContext(ctx, hist, d.ts(before)); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM `+n.Table+` WHERE completed_at IS NOT NULL AND completed_at < ?`, d.ts(before))
		if err != nil {
			return err
		}
		deleted, err = res.RowsAffected()
		return err
	}
	if tx != nil {
		return deleted, run(ctx, tx)
	}
	return deleted, sqlexec.InTx(ctx, d.DB, d.TxOptions, run)
}
