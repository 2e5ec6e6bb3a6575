package postgres

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hexeract/hexeract/internal/pgnotify"
	"github.com/hexeract/hexeract/store"
)

// schedSQL holds the scheduler statements of one table.
type schedSQL struct {
	insert, claim, claimOne, pushBack, cancel, reschedule string
	list, count, get, lease, release, leaseHolder         string
	tick, pruneTicks, exists                              string
	migrations                                            []store.Migration
}

// pgQuote quotes schema.table for PostgreSQL.
func pgQuote(schema, table string) string {
	if schema == "" {
		return `"` + table + `"`
	}
	return `"` + schema + `"."` + table + `"`
}

// schedStatements builds (once per table and driver) the statements of t.
func (d *Driver) schedStatements(t store.SchedulerTable) *schedSQL {
	if v, ok := d.sched.Load(t); ok {
		return v.(*schedSQL)
	}
	table := pgQuote(t.Schema, t.Table)
	ticks := pgQuote(t.Schema, t.Table+"_ticks")
	leases := pgQuote(t.Schema, t.Table+"_leases")
	idx := `"` + t.Table + `_due_idx"`
	lit := "'" + t.Name() + "'"
	const (
		keyAttempts  = store.SchedulerRefusalsKey
		keyLastError = store.SchedulerLastErrorKey
	)
	q := &schedSQL{
		insert: `WITH ins AS (
	INSERT INTO ` + table + ` (id, topic, due_at, uuid, payload, metadata)
	SELECT i, tp, d, u, p, m::jsonb FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::bytea[], $6::text[]) AS x(i, tp, d, u, p, m)
	RETURNING due_at)
SELECT pg_notify($7, (EXTRACT(EPOCH FROM f.first) * 1000000)::bigint::text) FROM (SELECT min(due_at) AS first FROM ins) f
WHERE f.first < clock_timestamp() + make_interval(secs => $8)`,
		// One statement claims the due rows and reports the next due time
		// after them (in an extra row whose id is NULL), so the poller
		// knows how long to sleep without another round trip. Rows due but
		// locked by another poller are that poller's business.
		claim: `WITH c AS (SELECT clock_timestamp() AS ts),
claimed AS (
	DELETE FROM ` + table + ` WHERE id IN (
		SELECT id FROM ` + table + ` WHERE due_at <= (SELECT ts FROM c)
		ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED)
	RETURNING id, topic, due_at, uuid, payload, metadata)
SELECT id, topic, due_at, uuid, payload, metadata::text, NULL::float8 FROM claimed
UNION ALL
SELECT NULL, NULL, n.due_at, NULL, NULL, NULL, EXTRACT(EPOCH FROM (n.due_at - clock_timestamp()))::float8
FROM (SELECT min(due_at) AS due_at FROM ` + table + ` WHERE due_at > (SELECT ts FROM c)) n`,
		claimOne: `DELETE FROM ` + table + ` WHERE id IN (
	SELECT id FROM ` + table + ` WHERE id = $1 AND due_at <= clock_timestamp() FOR UPDATE SKIP LOCKED)
RETURNING topic, due_at, uuid, payload, metadata::text`,
		// The exponent is capped before the power is taken (2^44 s
		// overflows an interval, 2^1024 a float), and only rows still due
		// are touched: a message rescheduled meanwhile keeps its time.
		pushBack: `UPDATE ` + table + ` SET
	due_at = clock_timestamp() + interval '1 second' * least(power(2, least(a.n, 6)), 60),
	metadata = metadata || jsonb_build_object('` + keyAttempts + `', (a.n + 1)::text, '` + keyLastError + `', $2::text)
FROM (SELECT id, CASE WHEN metadata->>'` + keyAttempts + `' ~ '^[0-9]{1,6}$' THEN (metadata->>'` + keyAttempts + `')::int ELSE 0 END AS n
	FROM ` + table + ` WHERE id = ANY($1::text[]) AND due_at <= clock_timestamp()) a
WHERE ` + table + `.id = a.id AND ` + table + `.due_at <= clock_timestamp()`,
		cancel: `DELETE FROM ` + table + ` WHERE id = $1`,
		reschedule: `WITH upd AS (
	UPDATE ` + table + ` SET due_at = $2 WHERE id = $1 RETURNING due_at)
SELECT CASE WHEN due_at < clock_timestamp() + make_interval(secs => $4)
	THEN pg_notify($3, (EXTRACT(EPOCH FROM due_at) * 1000000)::bigint::text) END FROM upd`,
		list: `SELECT id, topic, due_at, metadata->>'ce_type', created_at,
	CASE WHEN metadata->>'` + keyAttempts + `' ~ '^[0-9]{1,6}$' THEN (metadata->>'` + keyAttempts + `')::int ELSE 0 END,
	coalesce(metadata->>'` + keyLastError + `', '') FROM ` + table + `
WHERE ($1 = '' OR topic = $1) ORDER BY due_at, id LIMIT $2`,
		count: `SELECT count(*) FROM ` + table + ` WHERE ($1 = '' OR topic = $1)`,
		get: `SELECT id, topic, due_at, metadata->>'ce_type', created_at,
	CASE WHEN metadata->>'` + keyAttempts + `' ~ '^[0-9]{1,6}$' THEN (metadata->>'` + keyAttempts + `')::int ELSE 0 END,
	coalesce(metadata->>'` + keyLastError + `', ''), metadata::text FROM ` + table + ` WHERE id = $1`,
		lease: `INSERT INTO ` + leases + ` AS l (name, holder, expires_at)
VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3))
ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
WHERE l.holder = EXCLUDED.holder OR l.expires_at < clock_timestamp()
RETURNING holder`,
		release:     `DELETE FROM ` + leases + ` WHERE name = $1 AND holder = $2`,
		leaseHolder: `SELECT holder FROM ` + leases + ` WHERE name = $1 AND expires_at > clock_timestamp()`,
		tick:        `INSERT INTO ` + ticks + ` (job, tick, holder) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		pruneTicks:  `DELETE FROM ` + ticks + ` WHERE job = $1 AND tick < $2`,
		exists:      `SELECT to_regclass(` + lit + `) IS NOT NULL`,
		migrations: []store.Migration{{Version: 1, Name: "create", SQL: `CREATE TABLE IF NOT EXISTS ` + table + ` (
	id         text        PRIMARY KEY,
	topic      text        NOT NULL,
	due_at     timestamptz NOT NULL,
	uuid       text        NOT NULL,
	payload    bytea       NOT NULL,
	metadata   jsonb       NOT NULL DEFAULT '{}',
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ` + idx + ` ON ` + table + ` (due_at);
CREATE TABLE IF NOT EXISTS ` + ticks + ` (
	job      text        NOT NULL,
	tick     timestamptz NOT NULL,
	holder   text        NOT NULL,
	fired_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (job, tick)
);
CREATE TABLE IF NOT EXISTS ` + leases + ` (
	name       text        PRIMARY KEY,
	holder     text        NOT NULL,
	expires_at timestamptz NOT NULL
);
`}},
	}
	v, _ := d.sched.LoadOrStore(t, q)
	return v.(*schedSQL)
}

// SchedulerMigrations returns the migrations of the scheduler tables of t.
func (e *executor) SchedulerMigrations(t store.SchedulerTable) ([]store.Migration, error) {
	return e.d.schedStatements(t).migrations, nil
}

func notifySecs(d time.Duration) float64 {
	if d < 0 {
		return -1e9
	}
	return d.Seconds()
}

// SchedulerInsert stores rows with one statement (unnest), and NOTIFYs on
// commit when the earliest is due within notifyWithin.
func (e *executor) SchedulerInsert(ctx context.Context, t store.SchedulerTable, rows []store.SchedulerRow, notifyWithin time.Duration) error {
	n := len(rows)
	ids, topics, uuids, metas := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	dues, payloads := make([]time.Time, n), make([][]byte, n)
	for i, r := range rows {
		ids[i], topics[i], uuids[i], metas[i], dues[i], payloads[i] = r.ID, r.Topic, r.UUID, string(r.Metadata), r.DueAt, r.Payload
	}
	_, err := e.db.Exec(ctx, e.d.schedStatements(t).insert, ids, topics, dues, uuids, payloads, metas, t.Channel, notifySecs(notifyWithin))
	return err
}

// SchedulerClaim claims due rows with FOR UPDATE SKIP LOCKED and reads the
// next due time in the same statement.
func (e *executor) SchedulerClaim(ctx context.Context, t store.SchedulerTable, limit int) (store.SchedulerClaim, error) {
	var out store.SchedulerClaim
	rows, err := e.db.Query(ctx, e.d.schedStatements(t).claim, limit)
	if err != nil {
		return out, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id, topic, uuid, metadata *string
			due                       *time.Time
			payload                   []byte
			in                        *float64
		)
		if err := rows.Scan(&id, &topic, &due, &uuid, &payload, &metadata, &in); err != nil {
			return out, err
		}
		if id == nil { // the next-due row
			if due != nil && in != nil {
				out.NextDue, out.NextIn = *due, time.Duration(*in*float64(time.Second))
			}
			continue
		}
		out.Rows = append(out.Rows, store.SchedulerClaimed{ID: *id, Topic: *topic, UUID: *uuid, DueAt: *due, Payload: payload, Metadata: []byte(*metadata)})
	}
	return out, rows.Err()
}

// SchedulerClaimOne claims the row id if it is due and not locked.
func (e *executor) SchedulerClaimOne(ctx context.Context, t store.SchedulerTable, id string) (store.SchedulerClaimed, bool, error) {
	c := store.SchedulerClaimed{ID: id}
	var md string
	err := e.db.QueryRow(ctx, e.d.schedStatements(t).claimOne, id).Scan(&c.Topic, &c.DueAt, &c.UUID, &c.Payload, &md)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, false, nil
	}
	c.Metadata = []byte(md)
	return c, err == nil, err
}

// SchedulerPushBack postpones refused rows with backoff.
func (e *executor) SchedulerPushBack(ctx context.Context, t store.SchedulerTable, ids []string, lastError string) error {
	_, err := e.db.Exec(ctx, e.d.schedStatements(t).pushBack, ids, lastError)
	return err
}

// SchedulerCancel deletes the row id.
func (e *executor) SchedulerCancel(ctx context.Context, t store.SchedulerTable, id string) (bool, error) {
	tag, err := e.db.Exec(ctx, e.d.schedStatements(t).cancel, id)
	return err == nil && tag.RowsAffected() > 0, err
}

// SchedulerReschedule moves the row id to at.
func (e *executor) SchedulerReschedule(ctx context.Context, t store.SchedulerTable, id string, at time.Time, notifyWithin time.Duration) (bool, error) {
	tag, err := e.db.Exec(ctx, e.d.schedStatements(t).reschedule, id, at, t.Channel, notifySecs(notifyWithin))
	return err == nil && tag.RowsAffected() > 0, err
}

// SchedulerGet returns the row id.
func (e *executor) SchedulerGet(ctx context.Context, t store.SchedulerTable, id string) (store.SchedulerPending, bool, error) {
	var (
		p   store.SchedulerPending
		typ *string
		md  string
	)
	err := e.db.QueryRow(ctx, e.d.schedStatements(t).get, id).Scan(&p.ID, &p.Topic, &p.DueAt, &typ, &p.CreatedAt, &p.Refusals, &p.LastError, &md)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, false, nil
	}
	if err != nil {
		return p, false, err
	}
	if typ != nil {
		p.Type = *typ
	}
	p.Metadata = []byte(md)
	return p, true, nil
}

// SchedulerList lists rows in due order.
func (e *executor) SchedulerList(ctx context.Context, t store.SchedulerTable, topic string, limit int) ([]store.SchedulerPending, error) {
	rows, err := e.db.Query(ctx, e.d.schedStatements(t).list, topic, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.SchedulerPending, error) {
		var p store.SchedulerPending
		var typ *string
		err := r.Scan(&p.ID, &p.Topic, &p.DueAt, &typ, &p.CreatedAt, &p.Refusals, &p.LastError)
		if typ != nil {
			p.Type = *typ
		}
		return p, err
	})
}

// SchedulerCount counts rows.
func (e *executor) SchedulerCount(ctx context.Context, t store.SchedulerTable, topic string) (int64, error) {
	var n int64
	err := e.db.QueryRow(ctx, e.d.schedStatements(t).count, topic).Scan(&n)
	return n, err
}

// SchedulerTakeLease takes or renews the lease row on the database clock.
func (e *executor) SchedulerTakeLease(ctx context.Context, t store.SchedulerTable, name, holder string, ttl time.Duration) (bool, error) {
	var h string
	err := e.db.QueryRow(ctx, e.d.schedStatements(t).lease, name, holder, ttl.Seconds()).Scan(&h)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// SchedulerReleaseLease frees the lease.
func (e *executor) SchedulerReleaseLease(ctx context.Context, t store.SchedulerTable, name, holder string) error {
	_, err := e.db.Exec(ctx, e.d.schedStatements(t).release, name, holder)
	return err
}

// SchedulerLeaseHolder returns the holder of the unexpired lease.
func (e *executor) SchedulerLeaseHolder(ctx context.Context, t store.SchedulerTable, name string) (string, error) {
	var h string
	err := e.db.QueryRow(ctx, e.d.schedStatements(t).leaseHolder, name).Scan(&h)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return h, err
}

// SchedulerFireTick records a cron tick once.
func (e *executor) SchedulerFireTick(ctx context.Context, t store.SchedulerTable, job string, tick time.Time, holder string, pruneBefore time.Time) (bool, error) {
	q := e.d.schedStatements(t)
	tag, err := e.db.Exec(ctx, q.tick, job, tick, holder)
	if err != nil || tag.RowsAffected() == 0 {
		return false, err
	}
	if _, err := e.db.Exec(ctx, q.pruneTicks, job, pruneBefore); err != nil {
		return false, err
	}
	return true, nil
}

// SchedulerListen LISTENs on t.Channel on one connection of the pool (see
// internal/pgnotify); the payload is the due time in Unix microseconds.
func (e *executor) SchedulerListen(ctx context.Context, t store.SchedulerTable, log *slog.Logger, ready func(), wake func(time.Time)) error {
	if log == nil {
		log = e.d.log
	}
	l, err := pgnotify.New(pgnotify.ConnectPool(e.d.pool), []string{t.Channel},
		func(n *pgconn.Notification) {
			var due time.Time
			if us, err := strconv.ParseInt(n.Payload, 10, 64); err == nil {
				due = time.UnixMicro(us)
			}
			wake(due)
		},
		pgnotify.WithLogger(log),
		pgnotify.WithOnListen(ready))
	if err != nil {
		return err
	}
	l.Run(ctx)
	return nil
}

// SchedulerTableExists reports whether the table exists.
func (e *executor) SchedulerTableExists(ctx context.Context, t store.SchedulerTable) (bool, error) {
	var ok bool
	err := e.db.QueryRow(ctx, e.d.schedStatements(t).exists).Scan(&ok)
	return ok, err
}
