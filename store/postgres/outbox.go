package postgres

import (
	"bytes"
	"context"
	"embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hexeract/hexeract/internal/sqlident"
	"github.com/hexeract/hexeract/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// copyThreshold is the batch size from which OutboxInsert writes with COPY
// instead of a multi-row INSERT.
const copyThreshold = 512

// obNames are the quoted names of one outbox's tables.
type obNames struct {
	name, table, dead, delivered string
	ident                        pgx.Identifier
}

func outboxNames(t store.OutboxTable) obNames {
	n := sqlident.Name{Schema: t.Schema, Table: t.Table}
	q := func(suffix string) string { return sqlident.Name{Schema: t.Schema, Table: t.Table + suffix}.Quoted() }
	ident := pgx.Identifier{t.Table}
	if t.Schema != "" {
		ident = pgx.Identifier{t.Schema, t.Table}
	}
	return obNames{name: n.String(), table: n.Quoted(), dead: q("_dead"), delivered: q("_delivered"), ident: ident}
}

func quotedIndex(schema, name string) (string, error) {
	if len(name) > 63 {
		return "", fmt.Errorf("index name %s is longer than 63 bytes; use a shorter table name", name)
	}
	_ = schema
	return `"` + name + `"`, nil
}

// loadMigrations renders the embedded migrations whose file names start
// with prefix ("outbox_" or "inbox_").
func loadMigrations(prefix string, data map[string]string) ([]store.Migration, error) {
	entries, err := fs.Glob(migrationFiles, "migrations/"+prefix+"*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(entries)
	var out []store.Migration
	for _, path := range entries {
		base := strings.TrimSuffix(strings.TrimPrefix(path, "migrations/"+prefix), ".sql")
		num, name, ok := strings.Cut(base, "_")
		if !ok {
			return nil, fmt.Errorf("postgres: migration file %s is not named NNNN_name.sql", path)
		}
		version, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("postgres: migration file %s: %w", path, err)
		}
		text, err := migrationFiles.ReadFile(path)
		if err != nil {
			return nil, err
		}
		tmpl, err := template.New(path).Option("missingkey=error").Parse(string(text))
		if err != nil {
			return nil, fmt.Errorf("postgres: migration %s: %w", path, err)
		}
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, data); err != nil {
			return nil, fmt.Errorf("postgres: migration %s: %w", path, err)
		}
		out = append(out, store.Migration{Version: version, Name: name, SQL: buf.String()})
	}
	return out, nil
}

// OutboxMigrations returns the migrations of t's tables.
func (e *executor) OutboxMigrations(t store.OutboxTable) ([]store.Migration, error) {
	n := outboxNames(t)
	data := map[string]string{"Table": n.table, "Dead": n.dead, "Delivered": n.delivered, "Schema": ""}
	if t.Schema != "" {
		data["Schema"] = `"` + t.Schema + `"`
	}
	for key, suffix := range map[string]string{"KeyIndex": "_key_idx", "DeadIDIndex": "_dead_id", "DeliveredAtIndex": "_dlv_at"} {
		idx, err := quotedIndex(t.Schema, t.Table+suffix)
		if err != nil {
			return nil, err
		}
		data[key] = idx
	}
	return loadMigrations("outbox_", data)
}

const lockKeysSQL = `SELECT pg_advisory_xact_lock($1::integer, s.h) FROM (SELECT DISTINCT hashtext(k) AS h FROM unnest($2::text[]) AS k WHERE k <> '' ORDER BY 1) AS s`

func notifySQL(t store.OutboxTable) string { return `SELECT pg_notify('` + t.Channel + `', '')` }

// OutboxInsert writes b: one INSERT for one row, an INSERT ... SELECT
// FROM unnest(...) for up to 511, COPY from 512 on.
func (e *executor) OutboxInsert(ctx context.Context, t store.OutboxTable, b *store.OutboxBatch, opts store.OutboxWriteOptions) error {
	if b.Len() == 0 {
		return nil
	}
	n := outboxNames(t)
	if b.Keyed && opts.KeyLock {
		if _, err := e.db.Exec(ctx, lockKeysSQL, t.LockClass, b.Keys); err != nil {
			return fmt.Errorf("lock ordering keys: %w", err)
		}
	}
	if b.Len() >= copyThreshold {
		rows := make([][]any, b.Len())
		for i := range b.IDs {
			var key any
			if b.Keys[i] != "" {
				key = b.Keys[i]
			}
			rows[i] = []any{b.IDs[i], b.Topics[i], key, b.Metadata[i], b.Payloads[i]}
		}
		if _, err := e.db.CopyFrom(ctx, n.ident, []string{"id", "topic", "ordering_key", "metadata", "payload"}, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
		if opts.NotifyInTx {
			if _, err := e.db.Exec(ctx, notifySQL(t)); err != nil {
				return fmt.Errorf("notify: %w", err)
			}
		}
		return nil
	}
	var sql string
	var args []any
	if b.Len() == 1 {
		sql = `INSERT INTO ` + n.table + ` (id, topic, ordering_key, metadata, payload) VALUES ($1, $2, NULLIF($3, ''), $4::jsonb, $5)`
		args = []any{b.IDs[0], b.Topics[0], b.Keys[0], b.Metadata[0], b.Payloads[0]}
	} else {
		sql = `INSERT INTO ` + n.table + ` (id, topic, ordering_key, metadata, payload)
SELECT u.i, u.t, NULLIF(u.k, ''), u.m::jsonb, u.p
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[]) WITH ORDINALITY AS u(i, t, k, m, p, n)
ORDER BY u.n`
		args = []any{b.IDs, b.Topics, b.Keys, b.Metadata, b.Payloads}
	}
	if opts.NotifyInTx {
		sql = `WITH ins AS (` + sql + `) SELECT pg_notify('` + t.Channel + `', '')`
	}
	_, err := e.db.Exec(ctx, sql, args...)
	return err
}

// OutboxNotify sends the table's notification in a transaction of its own
// that does not wait for its WAL flush (synchronous_commit off for it
// alone): only the wake-up is at stake.
func (e *executor) OutboxNotify(ctx context.Context, t store.OutboxTable) error {
	_, err := e.d.pool.Exec(ctx, `SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, '')`, t.Channel)
	return err
}

// OutboxStats counts the rows of t's tables.
func (e *executor) OutboxStats(ctx context.Context, t store.OutboxTable) (store.OutboxStats, error) {
	n := outboxNames(t)
	var st store.OutboxStats
	var age float64
	err := e.db.QueryRow(ctx, `SELECT
  (SELECT count(*) FROM `+n.table+`),
  (SELECT count(*) FROM `+n.table+` WHERE attempts > 0),
  COALESCE((SELECT EXTRACT(EPOCH FROM now() - min(created_at))::float8 FROM `+n.table+`), 0),
  (SELECT count(*) FROM `+n.dead+`),
  (SELECT count(*) FROM `+n.delivered+`)`).Scan(&st.Pending, &st.Retrying, &age, &st.Dead, &st.Delivered)
	st.OldestPendingAge = time.Duration(age * float64(time.Second))
	return st, err
}

// OutboxDeadList lists dead rows after afterSeq.
func (e *executor) OutboxDeadList(ctx context.Context, t store.OutboxTable, afterSeq int64, limit int) ([]store.OutboxDeadRow, error) {
	n := outboxNames(t)
	rows, err := e.db.Query(ctx, `SELECT seq, id, topic, COALESCE(ordering_key, ''), metadata::text, payload, attempts,
  COALESCE(last_error, ''), created_at, dead_at FROM `+n.dead+` WHERE seq > $1 ORDER BY seq LIMIT $2`, afterSeq, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.OutboxDeadRow, error) {
		var d store.OutboxDeadRow
		err := row.Scan(&d.Seq, &d.ID, &d.Topic, &d.OrderingKey, &d.Metadata, &d.Payload, &d.Attempts, &d.LastError, &d.CreatedAt, &d.DeadAt)
		return d, err
	})
}

// OutboxDeadMove deletes (and with replay re-inserts) one batch of dead rows.
func (e *executor) OutboxDeadMove(ctx context.Context, t store.OutboxTable, ids []string, limit int, replay, notify bool) (int64, error) {
	n := outboxNames(t)
	filter := ``
	args := []any{limit}
	if len(ids) > 0 {
		filter = `WHERE id = ANY($2::text[])`
		args = append(args, ids)
	}
	del := `DELETE FROM ` + n.dead + ` x USING (SELECT seq FROM ` + n.dead + ` ` + filter +
		` ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED) s WHERE x.seq = s.seq`
	if !replay {
		tag, err := e.db.Exec(ctx, del, args...)
		return tag.RowsAffected(), err
	}
	note := `''`
	if notify {
		note = `pg_notify('` + t.Channel + `', '')::text`
	}
	sql := `WITH d AS (` + del + ` RETURNING x.seq, x.id, x.topic, x.ordering_key, x.metadata, x.payload, x.created_at),
ins AS (INSERT INTO ` + n.table + ` (id, topic, ordering_key, metadata, payload, created_at)
  SELECT id, topic, ordering_key, metadata, payload, now() FROM d ORDER BY seq RETURNING 1)
SELECT (SELECT count(*) FROM ins), ` + note
	var count int64
	var ignored string
	err := e.db.QueryRow(ctx, sql, args...).Scan(&count, &ignored)
	return count, err
}

// OutboxCleanupDelivered deletes one batch of old delivered rows.
func (e *executor) OutboxCleanupDelivered(ctx context.Context, t store.OutboxTable, olderThan time.Duration, limit int) (int64, error) {
	n := outboxNames(t)
	tag, err := e.db.Exec(ctx, `DELETE FROM `+n.delivered+` x USING (SELECT seq FROM `+n.delivered+
		` WHERE delivered_at < now() - make_interval(secs => $1) ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED) s WHERE x.seq = s.seq`,
		olderThan.Seconds(), limit)
	return tag.RowsAffected(), err
}

// relayPool is a relay's own pool: one connection per worker, sessions
// with idle_in_transaction_session_timeout set to the lease (PostgreSQL
// ends a relay that hangs in its claiming transaction, and the rows are
// claimable again) and synchronous_commit off unless asked otherwise.
type relayPool struct {
	db                                           *pgxpool.Pool
	claimSQL, reinsertSQL, deadSQL, unarchiveSQL string
	retention                                    bool
}

// OutboxOpenRelay opens the relay's pool (lazily: no connection is made
// before the first claim).
func (e *executor) OutboxOpenRelay(ctx context.Context, cfg store.OutboxRelayConfig) (store.OutboxRelayPool, error) {
	pcfg := e.d.pool.Config()
	pcfg.MaxConns = int32(max(cfg.Workers, 1))
	pcfg.MinConns = 0
	if pcfg.ConnConfig.RuntimeParams == nil {
		pcfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	rp := pcfg.ConnConfig.RuntimeParams
	if cfg.Lease > 0 {
		rp["idle_in_transaction_session_timeout"] = strconv.FormatInt(cfg.Lease.Milliseconds(), 10)
	}
	if _, ok := rp["application_name"]; !ok {
		rp["application_name"] = "hexeract-relay " + cfg.Table.Name()
	}
	if !cfg.SyncCommit {
		rp["synchronous_commit"] = "off"
	}
	db, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, err
	}
	p := &relayPool{db: db, retention: cfg.Retention}
	p.buildSQL(outboxNames(cfg.Table), cfg.Retention)
	return p, nil
}

// returning is the column list every claim returns, in the order scanRows
// and decodeRow read it.
const returning = `d.seq, d.id, d.topic, d.ordering_key, d.metadata::text, d.payload, d.attempts, d.last_error, d.created_at`

func (p *relayPool) buildSQL(t obNames, retention bool) {
	// Heads: rows that can go now. A row with an ordering key is a head
	// only when no earlier row with the same key exists (it is the first
	// row of its key, found in the (ordering_key, seq) index: written as
	// NOT EXISTS, the planner scanned the whole table for keys with many
	// rows): the earlier row is either locked by another worker (in
	// flight), waiting for its retry time, or not yet visible. Heads are
	// locked one by one, in seq order and skipping those locked by others,
	// only as far as the outer LIMIT pulls them.
	//
	// Followers: for each keyed head this worker locked, the key's rows
	// from the head on, in seq order (no other worker can claim them while
	// the head is locked, so FOR UPDATE does not wait, unless producers
	// without the key lock committed a key's rows out of seq order). A hot
	// key thus moves in full batches, and a batch holds as few keys as
	// fill it, so the other workers find other keys' heads unlocked.
	//
	// The outer LIMIT stops the nested loop once the batch is full: heads
	// beyond it are neither read further nor locked.
	sel := `SELECT COALESCE(f.ctid, h.ctid) FROM (
  SELECT c.ctid, c.seq, c.ordering_key FROM ` + t.table + ` c
  WHERE c.next_attempt_at <= now()
    AND (c.ordering_key IS NULL OR c.seq = (
          SELECT p.seq FROM ` + t.table + ` p WHERE p.ordering_key = c.ordering_key ORDER BY p.ordering_key, p.seq LIMIT 1))
  ORDER BY c.seq LIMIT $1
  FOR UPDATE SKIP LOCKED
) h
LEFT JOIN LATERAL (
  SELECT k.ctid FROM ` + t.table + ` k
  WHERE h.ordering_key IS NOT NULL AND k.ordering_key = h.ordering_key AND k.seq >= h.seq
  ORDER BY k.seq LIMIT $1
  FOR UPDATE
) f ON true
LIMIT $1`
	// The claimed rows are locked by this transaction, so their ctids
	// stay valid: the DELETE finds them with a TID scan.
	del := `DELETE FROM ` + t.table + ` d WHERE d.ctid = ANY(ARRAY(` + sel + `)) RETURNING `
	if !retention {
		p.claimSQL = del + returning
	} else {
		p.claimSQL = `WITH d AS (` + del + `d.*), a AS (
INSERT INTO ` + t.delivered + ` (seq, id, topic, ordering_key, metadata, payload, attempts, created_at)
SELECT seq, id, topic, ordering_key, metadata, payload, attempts + 1, created_at FROM d)
SELECT ` + returning + ` FROM d`
	}
	// The backoff counts from this statement (after the publish failed),
	// not from now(), the start of a claiming transaction that stayed open
	// while the broker was called.
	p.reinsertSQL = `INSERT INTO ` + t.table + ` (seq, id, topic, ordering_key, metadata, payload, attempts, next_attempt_at, last_error, created_at)
SELECT u.s, u.i, u.t, NULLIF(u.k, ''), u.m::jsonb, u.p, u.a, statement_timestamp() + make_interval(secs => u.d), NULLIF(u.e, ''), u.c
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::int[], $8::float8[], $9::text[], $10::timestamptz[])
  AS u(s, i, t, k, m, p, a, d, e, c)`
	p.deadSQL = `INSERT INTO ` + t.dead + ` (seq, id, topic, ordering_key, metadata, payload, attempts, last_error, created_at)
SELECT u.s, u.i, u.t, NULLIF(u.k, ''), u.m::jsonb, u.p, u.a, NULLIF(u.e, ''), u.c
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::int[], $8::text[], $9::timestamptz[])
  AS u(s, i, t, k, m, p, a, e, c)`
	p.unarchiveSQL = `DELETE FROM ` + t.delivered + ` WHERE seq = ANY($1::bigint[])`
}

func (p *relayPool) Close() { p.db.Close() }

func (p *relayPool) Acquire(ctx context.Context) (store.OutboxRelayConn, error) {
	conn, err := p.db.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &relayConn{p: p, conn: conn}, nil
}

// relayConn claims on one connection, sending the COMMIT of a settled
// batch in one round trip with the BEGIN and claim of the next.
type relayConn struct {
	p       *relayPool
	conn    *pgxpool.Conn
	open    bool // a claiming transaction is open
	pending bool // a settled batch waits for its COMMIT
}

func (c *relayConn) Claim(ctx context.Context, limit int, buf []store.OutboxRow) (rows []store.OutboxRow, prev, err error) {
	bg := context.WithoutCancel(ctx)
	var b pgx.Batch
	sendCtx := ctx
	hadPending := c.pending
	if c.open {
		if c.pending {
			b.Queue("COMMIT")
			sendCtx = bg // a cancellation must not cut the commit
		} else {
			b.Queue("ROLLBACK")
		}
	}
	b.Queue("BEGIN")
	b.Queue(c.p.claimSQL, limit)
	br := c.conn.SendBatch(sendCtx, &b)
	if c.open {
		tag, cerr := br.Exec()
		if cerr == nil && hadPending && tag.String() != "COMMIT" {
			cerr = fmt.Errorf("transaction aborted (%s)", tag)
		}
		c.open, c.pending = false, false
		if hadPending {
			prev = cerr
		}
		if cerr != nil {
			_ = br.Close()
			return buf, prev, cerr
		}
	}
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return buf, prev, fmt.Errorf("begin: %w", err)
	}
	c.open = true
	res, err := br.Query()
	if err != nil {
		_ = br.Close()
		return buf, prev, fmt.Errorf("claim: %w", err)
	}
	rows, err = scanRows(res, buf)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return rows, prev, fmt.Errorf("claim: %w", err)
	}
	if len(rows) == 0 {
		_, err := c.conn.Exec(bg, "ROLLBACK")
		c.open = false
		return rows, prev, err
	}
	return rows, prev, nil
}

func (c *relayConn) Settle(ctx context.Context, s *store.OutboxSettlement) (bool, error) {
	if !c.open {
		return false, errors.New("postgres: Settle without a claimed batch")
	}
	if c.p.retention && (len(s.Retry) > 0 || len(s.Dead) > 0) {
		seqs := make([]int64, 0, len(s.Retry)+len(s.Dead))
		for i := range s.Retry {
			seqs = append(seqs, s.Retry[i].Row.Seq)
		}
		for i := range s.Dead {
			seqs = append(seqs, s.Dead[i].Seq)
		}
		if _, err := c.conn.Exec(ctx, c.p.unarchiveSQL, seqs); err != nil {
			return false, err
		}
	}
	if n := len(s.Retry); n > 0 {
		sq, ids, topics, keys, mds := make([]int64, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		ps, as, ds, es, cs := make([][]byte, n), make([]int32, n), make([]float64, n), make([]string, n), make([]time.Time, n)
		for j := range s.Retry {
			w := &s.Retry[j].Row
			sq[j], ids[j], topics[j], keys[j], mds[j], ps[j], as[j], es[j], cs[j] = w.Seq, w.ID, w.Topic, w.Key, w.Metadata, w.Payload, w.Attempts, w.LastError, w.CreatedAt
			ds[j] = s.Retry[j].Delay.Seconds()
		}
		if _, err := c.conn.Exec(ctx, c.p.reinsertSQL, sq, ids, topics, keys, mds, ps, as, ds, es, cs); err != nil {
			return false, err
		}
	}
	if n := len(s.Dead); n > 0 {
		sq, ids, topics, keys, mds := make([]int64, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		ps, as, es, cs := make([][]byte, n), make([]int32, n), make([]string, n), make([]time.Time, n)
		for j := range s.Dead {
			w := &s.Dead[j]
			sq[j], ids[j], topics[j], keys[j], mds[j], ps[j], as[j], es[j], cs[j] = w.Seq, w.ID, w.Topic, w.Key, w.Metadata, w.Payload, w.Attempts, w.LastError, w.CreatedAt
		}
		if _, err := c.conn.Exec(ctx, c.p.deadSQL, sq, ids, topics, keys, mds, ps, as, es, cs); err != nil {
			return false, err
		}
	}
	c.pending = true
	return false, nil
}

func (c *relayConn) Commit(ctx context.Context) error {
	if !c.open {
		return nil
	}
	tag, err := c.conn.Exec(ctx, "COMMIT")
	c.open, c.pending = false, false
	if err == nil && tag.String() != "COMMIT" {
		err = fmt.Errorf("transaction aborted (%s)", tag)
	}
	return err
}

// Release gives the connection back; a connection released inside a
// transaction is closed by the pool, which rolls the claim back.
func (c *relayConn) Release() { c.conn.Release() }

// scanRows appends the claimed rows to out, decoding them directly when
// their layout allows (binaryLayout) and through rows.Scan otherwise.
func scanRows(rows pgx.Rows, out []store.OutboxRow) ([]store.OutboxRow, error) {
	defer rows.Close()
	fast := binaryLayout(rows.FieldDescriptions())
	topic := ""
	for rows.Next() {
		var w store.OutboxRow
		if fast {
			if err := decodeRow(&w, rows.RawValues(), topic); err != nil {
				return out, err
			}
			topic = w.Topic
		} else {
			var key, lastErr *string
			if err := rows.Scan(&w.Seq, &w.ID, &w.Topic, &key, &w.Metadata, &w.Payload, &w.Attempts, &lastErr, &w.CreatedAt); err != nil {
				return out, err
			}
			if key != nil {
				w.Key = *key
			}
			if lastErr != nil {
				w.LastError = *lastErr
			}
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// binaryLayout reports whether the claim's result columns arrive in the
// formats decodeRow reads: binary int8, int4 and timestamptz; text and
// bytea either way (their binary form is the raw bytes).
func binaryLayout(fds []pgconn.FieldDescription) bool {
	want := []uint32{pgtype.Int8OID, pgtype.TextOID, pgtype.TextOID, pgtype.TextOID, pgtype.TextOID, pgtype.ByteaOID, pgtype.Int4OID, pgtype.TextOID, pgtype.TimestamptzOID}
	if len(fds) != len(want) {
		return false
	}
	for i, fd := range fds {
		if fd.DataTypeOID != want[i] {
			return false
		}
		switch fd.DataTypeOID {
		case pgtype.Int8OID, pgtype.Int4OID, pgtype.TimestamptzOID, pgtype.ByteaOID:
			if fd.Format != pgtype.BinaryFormatCode {
				return false
			}
		}
	}
	return true
}

// pgEpoch is PostgreSQL's timestamp epoch in Unix microseconds.
const pgEpoch = 946684800 * 1000000

var errRowLayout = errors.New("postgres: unexpected outbox claim row layout")

// decodeRow reads one claim row from its raw column values (see
// binaryLayout), without the per-column scan plans of rows.Scan. The topic
// string of the previous row is reused when equal (batches are usually one
// topic).
func decodeRow(w *store.OutboxRow, v [][]byte, prevTopic string) error {
	if len(v[0]) != 8 || len(v[6]) != 4 || len(v[8]) != 8 || v[1] == nil || v[2] == nil || v[4] == nil {
		return errRowLayout
	}
	w.Seq = int64(binary.BigEndian.Uint64(v[0]))
	w.ID = string(v[1])
	if string(v[2]) == prevTopic {
		w.Topic = prevTopic
	} else {
		w.Topic = string(v[2])
	}
	if v[3] != nil {
		w.Key = string(v[3])
	}
	w.Metadata = string(v[4])
	w.Payload = append(make([]byte, 0, len(v[5])), v[5]...)
	w.Attempts = int32(binary.BigEndian.Uint32(v[6]))
	if v[7] != nil {
		w.LastError = string(v[7])
	}
	w.CreatedAt = time.UnixMicro(int64(binary.BigEndian.Uint64(v[8])) + pgEpoch)
	return nil
}

// DBTX is what pgx.Tx, *pgxpool.Conn and *pgxpool.Pool have in common.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
}

// ExecutorOn returns an Executor whose operations run on db: a connection
// on which the caller manages a transaction itself (BEGIN sent in a
// pipeline, say), so the operations join that transaction.
func (d *Driver) ExecutorOn(db DBTX) store.Executor { return &executor{d: d, db: db} }
