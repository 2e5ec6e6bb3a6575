package mysql

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"time"

	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/internal/sqlexec"
)

// myQuote quotes schema.table for MySQL.
func myQuote(schema, table string) string {
	if schema == "" {
		return "`" + table + "`"
	}
	return "`" + schema + "`.`" + table + "`"
}

// schedSQL holds the scheduler statements of one table. Times are
// DATETIME(6) in UTC; "now" is the server's UTC_TIMESTAMP(6).
type schedSQL struct {
	table, ticks, leases string
	migrations           []store.Migration
}

func (d *Driver) schedStatements(t store.SchedulerTable) *schedSQL {
	if v, ok := d.sched.Load(t); ok {
		return v.(*schedSQL)
	}
	q := &schedSQL{
		table:  myQuote(t.Schema, t.Table),
		ticks:  myQuote(t.Schema, t.Table+"_ticks"),
		leases: myQuote(t.Schema, t.Table+"_leases"),
	}
	q.migrations = []store.Migration{{Version: 1, Name: "create", SQL: `CREATE TABLE IF NOT EXISTS ` + q.table + ` (
	id         VARCHAR(255) NOT NULL PRIMARY KEY,
	topic      VARCHAR(255) NOT NULL,
	due_at     DATETIME(6)  NOT NULL,
	uuid       VARCHAR(255) NOT NULL,
	payload    LONGBLOB     NOT NULL,
	metadata   LONGTEXT     NOT NULL,
	created_at DATETIME(6)  NOT NULL,
	KEY ` + "`" + t.Table + `_due_idx` + "`" + ` (due_at)
) ENGINE=InnoDB
` + sqlexec.StepSeparator + `
CREATE TABLE IF NOT EXISTS ` + q.ticks + ` (
	job      VARCHAR(255) NOT NULL,
	tick     DATETIME(6)  NOT NULL,
	holder   VARCHAR(255) NOT NULL,
	fired_at DATETIME(6)  NOT NULL,
	PRIMARY KEY (job, tick)
) ENGINE=InnoDB
` + sqlexec.StepSeparator + `
CREATE TABLE IF NOT EXISTS ` + q.leases + ` (
	name       VARCHAR(255) NOT NULL PRIMARY KEY,
	holder     VARCHAR(255) NOT NULL,
	expires_at DATETIME(6)  NOT NULL
) ENGINE=InnoDB
`}}
	v, _ := d.sched.LoadOrStore(t, q)
	return v.(*schedSQL)
}

// SchedulerMigrations returns the migrations of the scheduler tables of t.
func (e *executor) SchedulerMigrations(t store.SchedulerTable) ([]store.Migration, error) {
	return e.d.schedStatements(t).migrations, nil
}

// inTx runs fn in the executor's transaction, or in a new one on the pool.
func (e *executor) inTx(ctx context.Context, fn func(q sqlexec.Querier) error) error {
	if e.Tx.Tx != nil {
		return fn(e.Tx.Tx)
	}
	return sqlexec.InTx(ctx, e.d.db, txOptions(), func(ctx context.Context, tx *sql.Tx) error { return fn(tx) })
}

// insertChunk bounds the rows of one INSERT (7 placeholders a row).
const insertChunk = 1000

// SchedulerInsert stores rows with multi-row INSERTs and wakes the
// pollers of this process when the earliest is due within notifyWithin.
func (e *executor) SchedulerInsert(ctx context.Context, t store.SchedulerTable, rows []store.SchedulerRow, notifyWithin time.Duration) error {
	q := e.d.schedStatements(t)
	var first time.Time
	for start := 0; start < len(rows); start += insertChunk {
		chunk := rows[start:min(start+insertChunk, len(rows))]
		stmt := make([]byte, 0, 96+len(chunk)*40)
		stmt = append(stmt, "INSERT INTO "+q.table+" (id, topic, due_at, uuid, payload, metadata, created_at) VALUES "...)
		args := make([]any, 0, len(chunk)*6)
		for i, r := range chunk {
			if i > 0 {
				stmt = append(stmt, ", "...)
			}
			stmt = append(stmt, "(?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6))"...)
			args = append(args, r.ID, r.Topic, r.DueAt.UTC(), r.UUID, r.Payload, string(r.Metadata))
			if first.IsZero() || r.DueAt.Before(first) {
				first = r.DueAt
			}
		}
		if _, err := e.q.ExecContext(ctx, string(stmt), args...); err != nil {
			return err
		}
	}
	if notifyWithin >= 0 && !first.IsZero() && time.Until(first) < notifyWithin {
		e.notifyOnCommit(ctx, t.Channel)
	}
	return nil
}

func scanClaimed(rows *sql.Rows) ([]store.SchedulerClaimed, error) {
	defer func() { _ = rows.Close() }()
	var out []store.SchedulerClaimed
	for rows.Next() {
		var c store.SchedulerClaimed
		var due sqlexec.Time
		var md string
		if err := rows.Scan(&c.ID, &c.Topic, &due, &c.UUID, &c.Payload, &md); err != nil {
			return nil, err
		}
		c.DueAt, c.Metadata = due.T, []byte(md)
		out = append(out, c)
	}
	return out, rows.Err()
}

// SchedulerClaim locks due rows with FOR UPDATE SKIP LOCKED, deletes them
// and reads the next due time, in the executor's transaction.
func (e *executor) SchedulerClaim(ctx context.Context, t store.SchedulerTable, limit int) (store.SchedulerClaim, error) {
	var out store.SchedulerClaim
	if e.Tx.Tx == nil {
		return out, errors.New("mysql: SchedulerClaim outside a transaction")
	}
	q := e.d.schedStatements(t)
	rows, err := e.q.QueryContext(ctx, `SELECT id, topic, due_at, uuid, payload, metadata FROM `+q.table+
		` WHERE due_at <= UTC_TIMESTAMP(6) ORDER BY due_at LIMIT ? FOR UPDATE SKIP LOCKED`, limit)
	if err != nil {
		return out, err
	}
	if out.Rows, err = scanClaimed(rows); err != nil {
		return out, err
	}
	if len(out.Rows) > 0 {
		args := make([]any, len(out.Rows))
		for i, c := range out.Rows {
			args[i] = c.ID
		}
		if _, err := e.q.ExecContext(ctx, `DELETE FROM `+q.table+` WHERE id IN (`+sqlexec.Placeholders(len(args))+`)`, args...); err != nil {
			return out, err
		}
	}
	var next sqlexec.Time
	var in sql.NullInt64
	if err := e.q.QueryRowContext(ctx, `SELECT MIN(due_at), TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), MIN(due_at)) FROM `+q.table+
		` WHERE due_at > UTC_TIMESTAMP(6)`).Scan(&next, &in); err != nil {
		return out, err
	}
	if !next.T.IsZero() && in.Valid {
		out.NextDue, out.NextIn = next.T, time.Duration(in.Int64)*time.Microsecond
	}
	return out, nil
}

// SchedulerClaimOne claims the row id if it is due and not locked.
func (e *executor) SchedulerClaimOne(ctx context.Context, t store.SchedulerTable, id string) (store.SchedulerClaimed, bool, error) {
	if e.Tx.Tx == nil {
		return store.SchedulerClaimed{}, false, errors.New("mysql: SchedulerClaimOne outside a transaction")
	}
	q := e.d.schedStatements(t)
	rows, err := e.q.QueryContext(ctx, `SELECT id, topic, due_at, uuid, payload, metadata FROM `+q.table+
		` WHERE id = ? AND due_at <= UTC_TIMESTAMP(6) FOR UPDATE SKIP LOCKED`, id)
	if err != nil {
		return store.SchedulerClaimed{}, false, err
	}
	got, err := scanClaimed(rows)
	if err != nil || len(got) == 0 {
		return store.SchedulerClaimed{}, false, err
	}
	if _, err := e.q.ExecContext(ctx, `DELETE FROM `+q.table+` WHERE id = ?`, id); err != nil {
		return store.SchedulerClaimed{}, false, err
	}
	return got[0], true, nil
}

// SchedulerPushBack postpones refused rows with backoff; the metadata is
// updated in Go.
func (e *executor) SchedulerPushBack(ctx context.Context, t store.SchedulerTable, ids []string, lastError string) error {
	if len(ids) == 0 {
		return nil
	}
	q := e.d.schedStatements(t)
	return e.inTx(ctx, func(db sqlexec.Querier) error {
		args := make([]any, len(ids))
		for i, id := range ids {
			args[i] = id
		}
		rows, err := db.QueryContext(ctx, `SELECT id, metadata FROM `+q.table+` WHERE id IN (`+sqlexec.Placeholders(len(ids))+
			`) AND due_at <= UTC_TIMESTAMP(6) FOR UPDATE SKIP LOCKED`, args...)
		if err != nil {
			return err
		}
		ups, err := sqlexec.ScanPushBacks(rows, lastError)
		if err != nil {
			return err
		}
		for _, u := range ups {
			if _, err := db.ExecContext(ctx, `UPDATE `+q.table+` SET due_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, metadata = ? WHERE id = ?`,
				u.In.Microseconds(), string(u.Metadata), u.ID); err != nil {
				return err
			}
		}
		return nil
	})
}

// SchedulerCancel deletes the row id.
func (e *executor) SchedulerCancel(ctx context.Context, t store.SchedulerTable, id string) (bool, error) {
	res, err := e.q.ExecContext(ctx, `DELETE FROM `+e.d.schedStatements(t).table+` WHERE id = ?`, id)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// SchedulerReschedule moves the row id to at.
func (e *executor) SchedulerReschedule(ctx context.Context, t store.SchedulerTable, id string, at time.Time, notifyWithin time.Duration) (bool, error) {
	q := e.d.schedStatements(t)
	res, err := e.q.ExecContext(ctx, `UPDATE `+q.table+` SET due_at = ? WHERE id = ?`, at.UTC(), id)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	if n == 0 { // MySQL counts changed rows: the same due time changes none
		var c int
		if err := e.q.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+q.table+` WHERE id = ?`, id).Scan(&c); err != nil || c == 0 {
			return false, err
		}
	}
	if notifyWithin >= 0 && time.Until(at) < notifyWithin {
		e.notifyOnCommit(ctx, t.Channel)
	}
	return true, nil
}

func scanPending(rows *sql.Rows, withMeta bool) ([]store.SchedulerPending, error) {
	defer func() { _ = rows.Close() }()
	var out []store.SchedulerPending
	for rows.Next() {
		var p store.SchedulerPending
		var due, created sqlexec.Time
		var md string
		if err := rows.Scan(&p.ID, &p.Topic, &due, &created, &md); err != nil {
			return nil, err
		}
		p.DueAt, p.CreatedAt = due.T, created.T
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
	rows, err := e.q.QueryContext(ctx, `SELECT id, topic, due_at, created_at, metadata FROM `+e.d.schedStatements(t).table+` WHERE id = ?`, id)
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
	rows, err := e.q.QueryContext(ctx, `SELECT id, topic, due_at, created_at, metadata FROM `+e.d.schedStatements(t).table+
		` WHERE (? = '' OR topic = ?) ORDER BY due_at, id LIMIT ?`, topic, topic, limit)
	if err != nil {
		return nil, err
	}
	return scanPending(rows, false)
}

// SchedulerCount counts rows.
func (e *executor) SchedulerCount(ctx context.Context, t store.SchedulerTable, topic string) (int64, error) {
	var n int64
	err := e.q.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+e.d.schedStatements(t).table+` WHERE (? = '' OR topic = ?)`, topic, topic).Scan(&n)
	return n, err
}

// SchedulerTakeLease takes or renews the lease row: a row with an expiry
// on the server clock, so it survives the loss of the holder's connection
// and is taken over once expired.
func (e *executor) SchedulerTakeLease(ctx context.Context, t store.SchedulerTable, name, holder string, ttl time.Duration) (bool, error) {
	q := e.d.schedStatements(t)
	res, err := e.q.ExecContext(ctx, `INSERT IGNORE INTO `+q.leases+` (name, holder, expires_at) VALUES (?, ?, UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND)`,
		name, holder, ttl.Microseconds())
	if err != nil {
		return false, err
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, nil
	}
	if _, err := e.q.ExecContext(ctx, `UPDATE `+q.leases+` SET holder = ?, expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND
WHERE name = ? AND (holder = ? OR expires_at < UTC_TIMESTAMP(6))`, holder, ttl.Microseconds(), name, holder); err != nil {
		return false, err
	}
	var h string
	if err := e.q.QueryRowContext(ctx, `SELECT holder FROM `+q.leases+` WHERE name = ?`, name).Scan(&h); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		return false, err
	}
	return h == holder, nil
}

// SchedulerReleaseLease frees the lease.
func (e *executor) SchedulerReleaseLease(ctx context.Context, t store.SchedulerTable, name, holder string) error {
	_, err := e.q.ExecContext(ctx, `DELETE FROM `+e.d.schedStatements(t).leases+` WHERE name = ? AND holder = ?`, name, holder)
	return err
}

// SchedulerLeaseHolder returns the holder of the unexpired lease.
func (e *executor) SchedulerLeaseHolder(ctx context.Context, t store.SchedulerTable, name string) (string, error) {
	var h string
	err := e.q.QueryRowContext(ctx, `SELECT holder FROM `+e.d.schedStatements(t).leases+` WHERE name = ? AND expires_at > UTC_TIMESTAMP(6)`, name).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return h, err
}

// SchedulerFireTick records a cron tick once (the primary key decides).
func (e *executor) SchedulerFireTick(ctx context.Context, t store.SchedulerTable, job string, tick time.Time, holder string, pruneBefore time.Time) (bool, error) {
	q := e.d.schedStatements(t)
	res, err := e.q.ExecContext(ctx, `INSERT IGNORE INTO `+q.ticks+` (job, tick, holder, fired_at) VALUES (?, ?, ?, UTC_TIMESTAMP(6))`, job, tick.UTC(), holder)
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	if _, err := e.q.ExecContext(ctx, `DELETE FROM `+q.ticks+` WHERE job = ? AND tick < ?`, job, pruneBefore.UTC()); err != nil {
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
	err := e.q.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = COALESCE(NULLIF(?, ''), DATABASE()) AND table_name = ?`,
		t.Schema, t.Table).Scan(&n)
	return n > 0, err
}
