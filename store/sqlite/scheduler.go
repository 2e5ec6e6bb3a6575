package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/internal/sqlexec"
)

// schedSQL holds the scheduler table names of one table. Instants are
// INTEGER Unix microseconds (UTC); "now" is this process's clock, passed
// as a parameter.
type schedSQL struct {
	table, ticks, leases string
	migrations           []store.Migration
	err                  error
}

func (d *Driver) schedStatements(t store.SchedulerTable) *schedSQL {
	if v, ok := d.sched.Load(t); ok {
		return v.(*schedSQL)
	}
	q := &schedSQL{
		table:  `"` + t.Table + `"`,
		ticks:  `"` + t.Table + `_ticks"`,
		leases: `"` + t.Table + `_leases"`,
	}
	if t.Schema != "" {
		q.err = fmt.Errorf("sqlite: scheduler table %q: SQLite tables take no schema; name the table alone", t.Name())
	}
	q.migrations = []store.Migration{{Version: 1, Name: "create", SQL: `CREATE TABLE IF NOT EXISTS ` + q.table + ` (
	id         TEXT    NOT NULL PRIMARY KEY,
	topic      TEXT    NOT NULL,
	due_at     INTEGER NOT NULL,
	uuid       TEXT    NOT NULL,
	payload    BLOB    NOT NULL,
	metadata   TEXT    NOT NULL DEFAULT '{}',
	created_at INTEGER NOT NULL
);
` + sqlexec.StepSeparator + `
CREATE INDEX IF NOT EXISTS "` + t.Table + `_due_idx" ON ` + q.table + ` (due_at);
` + sqlexec.StepSeparator + `
CREATE TABLE IF NOT EXISTS ` + q.ticks + ` (
	job      TEXT    NOT NULL,
	tick     INTEGER NOT NULL,
	holder   TEXT    NOT NULL,
	fired_at INTEGER NOT NULL,
	PRIMARY KEY (job, tick)
);
` + sqlexec.StepSeparator + `
CREATE TABLE IF NOT EXISTS ` + q.leases + ` (
	name       TEXT    NOT NULL PRIMARY KEY,
	holder     TEXT    NOT NULL,
	expires_at INTEGER NOT NULL
);
`}}
	v, _ := d.sched.LoadOrStore(t, q)
	return v.(*schedSQL)
}

func (e *executor) sched(t store.SchedulerTable) (*schedSQL, error) {
	q := e.d.schedStatements(t)
	return q, q.err
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func nowMicros() int64 { return time.Now().UnixMicro() }

// SchedulerMigrations returns the migrations of the scheduler tables of t.
func (e *executor) SchedulerMigrations(t store.SchedulerTable) ([]store.Migration, error) {
	q, err := e.sched(t)
	if err != nil {
		return nil, err
	}
	return q.migrations, nil
}

// inTx runs fn in the executor's transaction, or in a new IMMEDIATE one.
func (e *executor) inTx(ctx context.Context, fn func(q sqlexec.Querier) error) error {
	if e.Tx.Tx != nil {
		return fn(e.Tx.Tx)
	}
	return sqlexec.InTx(ctx, e.d.db, nil, func(ctx context.Context, tx *sql.Tx) error { return fn(tx) })
}

// insertChunk bounds the rows of one INSERT (SQLite allows 32766
// parameters; 7 a row).
const insertChunk = 1000

// SchedulerInsert stores rows with multi-row INSERTs and wakes the
// pollers of this process when the earliest is due within notifyWithin.
func (e *executor) SchedulerInsert(ctx context.Context, t store.SchedulerTable, rows []store.SchedulerRow, notifyWithin time.Duration) error {
	q, err := e.sched(t)
	if err != nil {
		return err
	}
	now := nowMicros()
	var first time.Time
	for start := 0; start < len(rows); start += insertChunk {
		chunk := rows[start:min(start+insertChunk, len(rows))]
		stmt := make([]byte, 0, 96+len(chunk)*30)
		stmt = append(stmt, "INSERT INTO "+q.table+" (id, topic, due_at, uuid, payload, metadata, created_at) VALUES "...)
		args := make([]any, 0, len(chunk)*7)
		for i, r := range chunk {
			if i > 0 {
				stmt = append(stmt, ", "...)
			}
			stmt = append(stmt, "(?, ?, ?, ?, ?, ?, ?)"...)
			args = append(args, r.ID, r.Topic, micros(r.DueAt), r.UUID, r.Payload, string(r.Metadata), now)
			if first.IsZero() || r.DueAt.Before(first) {
				first = r.DueAt
			}
		}
		if _, err := e.q.ExecContext(ctx, string(stmt), args...); err != nil {
			return err
		}
	}
	if notifyWithin >= 0 && !first.IsZero() && time.Until(first) < notifyWithin {
		_ = e.d.hub.Notify(ctx, t.Channel)
	}
	return nil
}

func scanClaimed(rows *sql.Rows) ([]store.SchedulerClaimed, error) {
	defer func() { _ = rows.Close() }()
	var out []store.SchedulerClaimed
	for rows.Next() {
		var c store.SchedulerClaimed
		var due int64
		var md string
		if err := rows.Scan(&c.ID, &c.Topic, &due, &c.UUID, &c.Payload, &md); err != nil {
			return nil, err
		}
		c.DueAt, c.Metadata = time.UnixMicro(due).UTC(), []byte(md)
		out = append(out, c)
	}
	return out, rows.Err()
}

// SchedulerClaim deletes the due rows with DELETE ... RETURNING inside the
// executor's IMMEDIATE transaction, which holds SQLite's one write lock:
// no other claim runs until it commits or rolls back.
func (e *executor) SchedulerClaim(ctx context.Context, t store.SchedulerTable, limit int) (store.SchedulerClaim, error) {
	var out store.SchedulerClaim
	q, err := e.sched(t)
	if err != nil {
		return out, err
	}
	if e.Tx.Tx == nil {
		return out, errors.New("sqlite: SchedulerClaim outside a transaction")
	}
	now := nowMicros()
	rows, err := e.q.QueryContext(ctx, `DELETE FROM `+q.table+` WHERE id IN (
	SELECT id FROM `+q.table+` WHERE due_at <= ? ORDER BY due_at LIMIT ?)
RETURNING id, topic, due_at, uuid, payload, metadata`, now, limit)
	if err != nil {
		return out, err
	}
	if out.Rows, err = scanClaimed(rows); err != nil {
		return out, err
	}
	var next sql.NullInt64
	if err := e.q.QueryRowContext(ctx, `SELECT MIN(due_at) FROM `+q.table+` WHERE due_at > ?`, now).Scan(&next); err != nil {
		return out, err
	}
	if next.Valid {
		out.NextDue = time.UnixMicro(next.Int64).UTC()
		out.NextIn = time.Duration(next.Int64-nowMicros()) * time.Microsecond
	}
	return out, nil
}

// SchedulerClaimOne claims the row id if it is due.
func (e *executor) SchedulerClaimOne(ctx context.Context, t store.SchedulerTable, id string) (store.SchedulerClaimed, bool, error) {
	q, err := e.sched(t)
	if err != nil {
		return store.SchedulerClaimed{}, false, err
	}
	rows, err := e.q.QueryContext(ctx, `DELETE FROM `+q.table+` WHERE id = ? AND due_at <= ?
RETURNING id, topic, due_at, uuid, payload, metadata`, id, nowMicros())
	if err != nil {
		return store.SchedulerClaimed{}, false, err
	}
	got, err := scanClaimed(rows)
	if err != nil || len(got) == 0 {
		return store.SchedulerClaimed{}, false, err
	}
	return got[0], true, nil
}

// SchedulerPushBack postpones refused rows with backoff; the metadata is
// updated in Go.
func (e *executor) SchedulerPushBack(ctx context.Context, t store.SchedulerTable, ids []string, lastError string) error {
	q, err := e.sched(t)
	if err != nil || len(ids) == 0 {
		return err
	}
	return e.inTx(ctx, func(db sqlexec.Querier) error {
		now := nowMicros()
		args := make([]any, 0, len(ids)+1)
		for _, id := range ids {
			args = append(args, id)
		}
		args = append(args, now)
		rows, err := db.QueryContext(ctx, `SELECT id, metadata FROM `+q.table+` WHERE id IN (`+sqlexec.Placeholders(len(ids))+`) AND due_at <= ?`, args...)
		if err != nil {
			return err
		}
		ups, err := sqlexec.ScanPushBacks(rows, lastError)
		if err != nil {
			return err
		}
		for _, u := range ups {
			if _, err := db.ExecContext(ctx, `UPDATE `+q.table+` SET due_at = ?, metadata = ? WHERE id = ?`,
				now+u.In.Microseconds(), string(u.Metadata), u.ID); err != nil {
				return err
			}
		}
		return nil
	})
}

// SchedulerCancel deletes the row id.
func (e *executor) SchedulerCancel(ctx context.Context, t store.SchedulerTable, id string) (bool, error) {
	q, err := e.sched(t)
	if err != nil {
		return false, err
	}
	res, err := e.q.ExecContext(ctx, `DELETE FROM `+q.table+` WHERE id = ?`, id)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// SchedulerReschedule moves the row id to at.
func (e *executor) SchedulerReschedule(ctx context.Context, t store.SchedulerTable, id string, at time.Time, notifyWithin time.Duration) (bool, error) {
	q, err := e.sched(t)
	if err != nil {
		return false, err
	}
	res, err := e.q.ExecContext(ctx, `UPDATE `+q.table+` SET due_at = ? WHERE id = ?`, micros(at), id)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil || n == 0 {
		return false, err
	}
	if notifyWithin >= 0 && time.Until(at) < notifyWithin {
		_ = e.d.hub.Notify(ctx, t.Channel)
	}
	return true, nil
}

func scanPending(rows *sql.Rows, withMeta bool) ([]store.SchedulerPending, error) {
	defer func() { _ = rows.Close() }()
	var out []store.SchedulerPending
	for rows.Next() {
		var p store.SchedulerPending
		var due, created int64
		var md string
		if err := rows.Scan(&p.ID, &p.Topic, &due, &created, &md); err != nil {
			return nil, err
		}
		p.DueAt, p.CreatedAt = time.UnixMicro(due).UTC(), time.UnixMicro(created).UTC()
		p.Type, p.Refusals, p.LastError = sqlexec.SchedulerMeta([]byte(md))
		if withMeta {
			p.Metadata = []byte(md)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// SchedulerGet returns the row id.
func (e *executor) SchedulerGet(ctx context.Context, t store.SchedulerTable, id string) (store.SchedulerPending, bool, error) {
	q, err := e.sched(t)
	if err != nil {
		return store.SchedulerPending{}, false, err
	}
	rows, err := e.q.QueryContext(ctx, `SELECT id, topic, due_at, created_at, metadata FROM `+q.table+` WHERE id = ?`, id)
	if err != nil {
		return store.SchedulerPending{}, false, err
	}
	ps, err := scanPending(rows, true)
	if err != nil || len(ps) == 0 {
		return store.SchedulerPending{}, false, err
	}
	return ps[0], true, nil
}

// SchedulerList lists rows in due order.
func (e *executor) SchedulerList(ctx context.Context, t store.SchedulerTable, topic string, limit int) ([]store.SchedulerPending, error) {
	q, err := e.sched(t)
	if err != nil {
		return nil, err
	}
	rows, err := e.q.QueryContext(ctx, `SELECT id, topic, due_at, created_at, metadata FROM `+q.table+
		` WHERE (?1 = '' OR topic = ?1) ORDER BY due_at, id LIMIT ?2`, topic, limit)
	if err != nil {
		return nil, err
	}
	return scanPending(rows, false)
}

// SchedulerCount counts rows.
func (e *executor) SchedulerCount(ctx context.Context, t store.SchedulerTable, topic string) (int64, error) {
	q, err := e.sched(t)
	if err != nil {
		return 0, err
	}
	var n int64
	err = e.q.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+q.table+` WHERE (?1 = '' OR topic = ?1)`, topic).Scan(&n)
	return n, err
}

// SchedulerTakeLease takes or renews the lease row with one upsert.
func (e *executor) SchedulerTakeLease(ctx context.Context, t store.SchedulerTable, name, holder string, ttl time.Duration) (bool, error) {
	q, err := e.sched(t)
	if err != nil {
		return false, err
	}
	now := nowMicros()
	rows, err := e.q.QueryContext(ctx, `INSERT INTO `+q.leases+` AS l (name, holder, expires_at) VALUES (?1, ?2, ?3)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE l.holder = excluded.holder OR l.expires_at < ?4
RETURNING holder`, name, holder, now+ttl.Microseconds(), now)
	if err != nil {
		return false, err
	}
	defer func() { _ = rows.Close() }()
	got := rows.Next()
	return got, rows.Err()
}

// SchedulerReleaseLease frees the lease.
func (e *executor) SchedulerReleaseLease(ctx context.Context, t store.SchedulerTable, name, holder string) error {
	q, err := e.sched(t)
	if err != nil {
		return err
	}
	_, err = e.q.ExecContext(ctx, `DELETE FROM `+q.leases+` WHERE name = ? AND holder = ?`, name, holder)
	return err
}

// SchedulerLeaseHolder returns the holder of the unexpired lease.
func (e *executor) SchedulerLeaseHolder(ctx context.Context, t store.SchedulerTable, name string) (string, error) {
	q, err := e.sched(t)
	if err != nil {
		return "", err
	}
	var h string
	err = e.q.QueryRowContext(ctx, `SELECT holder FROM `+q.leases+` WHERE name = ? AND expires_at > ?`, name, nowMicros()).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return h, err
}

// SchedulerFireTick records a cron tick once (the primary key decides).
func (e *executor) SchedulerFireTick(ctx context.Context, t store.SchedulerTable, job string, tick time.Time, holder string, pruneBefore time.Time) (bool, error) {
	q, err := e.sched(t)
	if err != nil {
		return false, err
	}
	res, err := e.q.ExecContext(ctx, `INSERT INTO `+q.ticks+` (job, tick, holder, fired_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		job, micros(tick), holder, nowMicros())
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	if _, err := e.q.ExecContext(ctx, `DELETE FROM `+q.ticks+` WHERE job = ? AND tick < ?`, job, micros(pruneBefore)); err != nil {
		return false, err
	}
	return true, nil
}

// SchedulerListen listens on the driver's in-process notifier; other
// processes' rows are found by polling.
func (e *executor) SchedulerListen(ctx context.Context, t store.SchedulerTable, _ *slog.Logger, ready func(), wake func(time.Time)) error {
	return e.d.hub.Listen(ctx, t.Channel, ready, func() { wake(time.Time{}) })
}

// SchedulerTableExists reports whether the table exists.
func (e *executor) SchedulerTableExists(ctx context.Context, t store.SchedulerTable) (bool, error) {
	var n int
	err := e.q.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, t.Table).Scan(&n)
	return n > 0, err
}
