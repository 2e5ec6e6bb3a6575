// Package sqloutbox is the outbox and inbox of the database/sql drivers
// (MySQL/MariaDB and SQLite): one implementation, with the few places
// where the dialects differ (quoting, time encoding, the claim statement,
// key locks) chosen by [Dialect].
//
// Rows are claimed with a lease: a claim sets claimed_until and claimed_by
// on the rows in a short transaction (MySQL: SELECT ... FOR UPDATE SKIP
// LOCKED then UPDATE; SQLite: UPDATE ... RETURNING in the IMMEDIATE
// transaction), the relay publishes them outside any transaction, and a
// settlement deletes them (or puts them back, or moves them to the dead
// table) in another. A relay that dies leaves its rows claimed until the
// lease expires; then any relay claims them again. Nothing is held by a
// session, so a lost connection loses nothing.
//
// Per-key order: a row with an ordering key is claimable only when it is
// the first row of its key in the table (an earlier row that is claimed,
// waiting for a retry or not yet committed keeps it back). A claim takes
// the heads in sequence order and, for its keyed heads, the following
// rows of those keys.
package sqloutbox

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/internal/sqlexec"
)

// Dialect is what differs between the drivers.
type Dialect struct {
	// SQLite selects SQLite's SQL; MySQL/MariaDB otherwise.
	SQLite bool
	// DB is the driver's pool, for the relay's transactions.
	DB *sql.DB
	// TxOptions are the options of the transactions begun here.
	TxOptions *sql.TxOptions
	// Notify wakes the driver's in-process listeners of channel.
	Notify func(ctx context.Context, channel string) error
}

// Names are the quoted names of one outbox's tables.
type Names struct {
	Table, Dead, Delivered, Keys string
}

func (d Dialect) quote(schema, table string) string {
	if d.SQLite {
		return `"` + table + `"`
	}
	if schema == "" {
		return "`" + table + "`"
	}
	return "`" + schema + "`.`" + table + "`"
}

// OutboxNames quotes the names of t's tables.
func (d Dialect) OutboxNames(t store.OutboxTable) Names {
	return Names{
		Table: d.quote(t.Schema, t.Table), Dead: d.quote(t.Schema, t.Table+"_dead"),
		Delivered: d.quote(t.Schema, t.Table+"_delivered"), Keys: d.quote(t.Schema, t.Table+"_keys"),
	}
}

// ts encodes an instant: unix microseconds on SQLite, a UTC time on MySQL.
func (d Dialect) ts(t time.Time) any {
	if d.SQLite {
		return t.UnixMicro()
	}
	return t.UTC()
}

// fromTS decodes what ts stored.
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

func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// OutboxMigrations returns the outbox tables' migrations.
func (d Dialect) OutboxMigrations(t store.OutboxTable) []store.Migration {
	n := d.OutboxNames(t)
	if d.SQLite {
		return []store.Migration{{Version: 1, Name: "create", SQL: `CREATE TABLE IF NOT EXISTS ` + n.Table + ` (
	seq             INTEGER PRIMARY KEY AUTOINCREMENT,
	id              TEXT    NOT NULL,
	topic           TEXT    NOT NULL,
	ordering_key    TEXT,
	metadata        TEXT    NOT NULL,
	payload         BLOB    NOT NULL,
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER NOT NULL,
	claimed_until   INTEGER,
	claimed_by      INTEGER,
	last_error      TEXT,
	created_at      INTEGER NOT NULL
)
-- +step
CREATE INDEX IF NOT EXISTS "` + t.Table + `_key_idx" ON ` + n.Table + ` (ordering_key, seq) WHERE ordering_key IS NOT NULL
-- +step
CREATE TABLE IF NOT EXISTS ` + n.Dead + ` (
	seq          INTEGER PRIMARY KEY,
	id           TEXT    NOT NULL,
	topic        TEXT    NOT NULL,
	ordering_key TEXT,
	metadata     TEXT    NOT NULL,
	payload      BLOB    NOT NULL,
	attempts     INTEGER NOT NULL,
	last_error   TEXT,
	created_at   INTEGER NOT NULL,
	dead_at      INTEGER NOT NULL
)
-- +step
CREATE INDEX IF NOT EXISTS "` + t.Table + `_dead_id" ON ` + n.Dead + ` (id)
-- +step
CREATE TABLE IF NOT EXISTS ` + n.Delivered + ` (
	seq          INTEGER PRIMARY KEY,
	id           TEXT    NOT NULL,
	topic        TEXT    NOT NULL,
	ordering_key TEXT,
	metadata     TEXT    NOT NULL,
	payload      BLOB    NOT NULL,
	attempts     INTEGER NOT NULL,
	created_at   INTEGER NOT NULL,
	delivered_at INTEGER NOT NULL
)
-- +step
CREATE INDEX IF NOT EXISTS "` + t.Table + `_dlv_at" ON ` + n.Delivered + ` (delivered_at)`}}
	}
	return []store.Migration{{Version: 1, Name: "create", SQL: `CREATE TABLE IF NOT EXISTS ` + n.Table + ` (
	seq             BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
	id              VARCHAR(255) NOT NULL,
	topic           VARCHAR(255) NOT NULL,
	ordering_key    VARCHAR(512),
	metadata        LONGTEXT     NOT NULL,
	payload         LONGBLOB     NOT NULL,
	attempts        INT          NOT NULL DEFAULT 0,
	next_attempt_at DATETIME(6)  NOT NULL,
	claimed_until   DATETIME(6),
	claimed_by      BIGINT,
	last_error      TEXT,
	created_at      DATETIME(6)  NOT NULL,
	KEY ` + "`" + t.Table + "_key_idx`" + ` (ordering_key, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
-- +step
CREATE TABLE IF NOT EXISTS ` + n.Dead + ` (
	seq          BIGINT       NOT NULL PRIMARY KEY,
	id           VARCHAR(255) NOT NULL,
	topic        VARCHAR(255) NOT NULL,
	ordering_key VARCHAR(512),
	metadata     LONGTEXT     NOT NULL,
	payload      LONGBLOB     NOT NULL,
	attempts     INT          NOT NULL,
	last_error   TEXT,
	created_at   DATETIME(6)  NOT NULL,
	dead_at      DATETIME(6)  NOT NULL,
	KEY ` + "`" + t.Table + "_dead_id`" + ` (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
-- +step
CREATE TABLE IF NOT EXISTS ` + n.Delivered + ` (
	seq          BIGINT       NOT NULL PRIMARY KEY,
	id           VARCHAR(255) NOT NULL,
	topic        VARCHAR(255) NOT NULL,
	ordering_key VARCHAR(512),
	metadata     LONGTEXT     NOT NULL,
	payload      LONGBLOB     NOT NULL,
	attempts     INT          NOT NULL,
	created_at   DATETIME(6)  NOT NULL,
	delivered_at DATETIME(6)  NOT NULL,
	KEY ` + "`" + t.Table + "_dlv_at`" + ` (delivered_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
-- +step
CREATE TABLE IF NOT EXISTS ` + n.Keys + ` (
	h BIGINT NOT NULL PRIMARY KEY
) ENGINE=InnoDB`}}
}

// keyBuckets bounds the MySQL key-lock table: keys share a lock row when
// their hashes meet modulo it, which only serialises their producers.
const keyBuckets = 1 << 20

// maxInsertRows bounds one multi-row INSERT (placeholders).
const maxInsertRows = 1000

// OutboxInsert writes b through q.
func (d Dialect) OutboxInsert(ctx context.Context, q sqlexec.Querier, t store.OutboxTable, b *store.OutboxBatch, opts store.OutboxWriteOptions) error {
	if b.Len() == 0 {
		return nil
	}
	n := d.OutboxNames(t)
	if b.Keyed && opts.KeyLock && !d.SQLite {
		// A row lock per key until the transaction ends (in key order, so
		// two producers never deadlock): rows of one key commit in seq
		// order. It is a row lock, not a session lock, so a lost
		// connection releases it with its transaction.
		hs := make([]int64, 0, len(b.Keys))
		for _, k := range b.Keys {
			if k == "" {
				continue
			}
			h := fnv.New64a()
			_, _ = h.Write([]byte(k))
			hs = append(hs, int64(h.Sum64()%keyBuckets))
		}
		slices.Sort(hs)
		hs = slices.Compact(hs)
		args := make([]any, len(hs))
		for i, h := range hs {
			args[i] = h
		}
		if _, err := q.ExecContext(ctx, `INSERT INTO `+n.Keys+` (h) VALUES `+strings.TrimSuffix(strings.Repeat("(?), ", len(hs)), ", ")+
			` ON DUPLICATE KEY UPDATE h = h`, args...); err != nil {
			return fmt.Errorf("lock ordering keys: %w", err)
		}
	}
	now := d.ts(time.Now())
	for start := 0; start < b.Len(); start += maxInsertRows {
		end := min(start+maxInsertRows, b.Len())
		var sb strings.Builder
		sb.WriteString(`INSERT INTO ` + n.Table + ` (id, topic, ordering_key, metadata, payload, next_attempt_at, created_at) VALUES `)
		args := make([]any, 0, (end-start)*7)
		for i := start; i < end; i++ {
			if i > start {
				sb.WriteString(", ")
			}
			sb.WriteString("(?, ?, ?, ?, ?, ?, ?)")
			var key any
			if b.Keys[i] != "" {
				key = b.Keys[i]
			}
			args = append(args, b.IDs[i], b.Topics[i], key, b.Metadata[i], b.Payloads[i], now, now)
		}
		if _, err := q.ExecContext(ctx, sb.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

// OutboxStats counts the rows of t's tables.
func (d Dialect) OutboxStats(ctx context.Context, q sqlexec.Querier, t store.OutboxTable) (store.OutboxStats, error) {
	n := d.OutboxNames(t)
	var st store.OutboxStats
	var oldest any
	err := q.QueryRowContext(ctx, `SELECT
  (SELECT COUNT(*) FROM `+n.Table+`),
  (SELECT COUNT(*) FROM `+n.Table+` WHERE attempts > 0),
  (SELECT MIN(created_at) FROM `+n.Table+`),
  (SELECT COUNT(*) FROM `+n.Dead+`),
  (SELECT COUNT(*) FROM `+n.Delivered+`)`).Scan(&st.Pending, &st.Retrying, &oldest, &st.Dead, &st.Delivered)
	if oldest != nil {
		if at := fromTS(oldest); !at.IsZero() {
			st.OldestPendingAge = max(time.Since(at), 0)
		}
	}
	return st, err
}

// OutboxDeadList lists dead rows after afterSeq.
func (d Dialect) OutboxDeadList(ctx context.Context, q sqlexec.Querier, t store.OutboxTable, afterSeq int64, limit int) ([]store.OutboxDeadRow, error) {
	n := d.OutboxNames(t)
	rows, err := q.QueryContext(ctx, `SELECT seq, id, topic, COALESCE(ordering_key, ''), metadata, payload, attempts,
  COALESCE(last_error, ''), created_at, dead_at FROM `+n.Dead+` WHERE seq > ? ORDER BY seq LIMIT ?`, afterSeq, limit)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var out []store.OutboxDeadRow
	for rows.Next() {
		var r store.OutboxDeadRow
		var created, dead any
		if err := rows.Scan(&r.Seq, &r.ID, &r.Topic, &r.OrderingKey, &r.Metadata, &r.Payload, &r.Attempts, &r.LastError, &created, &dead); err != nil {
			return nil, err
		}
		r.CreatedAt, r.DeadAt = fromTS(created), fromTS(dead)
		out = append(out, r)
	}
	return out, rows.Err()
}

// inTx runs fn in a transaction of q when q is the pool, or in q's own.
func (d Dialect) inTx(ctx context.Context, q sqlexec.Querier, fn func(q sqlexec.Querier) error) error {
	if _, ok := q.(*sql.DB); !ok {
		return fn(q)
	}
	return sqlexec.InTx(ctx, d.DB, d.TxOptions, func(_ context.Context, tx *sql.Tx) error { return fn(tx) })
}

func int64Args(xs []int64) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

// OutboxDeadMove removes (and with replay re-inserts) one batch of dead rows.
func (d Dialect) OutboxDeadMove(ctx context.Context, q sqlexec.Querier, t store.OutboxTable, ids []string, limit int, replay, notify bool) (int64, error) {
	n := d.OutboxNames(t)
	var moved int64
	err := d.inTx(ctx, q, func(q sqlexec.Querier) error {
		filter := ``
		args := make([]any, 0, len(ids)+1)
		if len(ids) > 0 {
			filter = ` WHERE id IN (` + placeholders(len(ids)) + `)`
			for _, id := range ids {
				args = append(args, id)
			}
		}
		args = append(args, limit)
		lock := ` FOR UPDATE SKIP LOCKED`
		if d.SQLite {
			lock = ``
		}
		rows, err := q.QueryContext(ctx, `SELECT seq FROM `+n.Dead+filter+` ORDER BY seq LIMIT ?`+lock, args...)
		if err != nil {
			return err
		}
		seqs, err := scanInt64s(rows)
		if err != nil || len(seqs) == 0 {
			return err
		}
		in := ` WHERE seq IN (` + placeholders(len(seqs)) + `)`
		if replay {
			now := d.ts(time.Now())
			if _, err := q.ExecContext(ctx, `INSERT INTO `+n.Table+` (id, topic, ordering_key, metadata, payload, next_attempt_at, created_at)
SELECT id, topic, ordering_key, metadata, payload, ?, ? FROM `+n.Dead+in+` ORDER BY seq`, append([]any{now, now}, int64Args(seqs)...)...); err != nil {
				return err
			}
		}
		res, err := q.ExecContext(ctx, `DELETE FROM `+n.Dead+in, int64Args(seqs)...)
		if err != nil {
			return err
		}
		moved, err = res.RowsAffected()
		return err
	})
	if err == nil && replay && moved > 0 && d.Notify != nil {
		_ = d.Notify(ctx, t.Channel)
	}
	return moved, err
}

func scanInt64s(rows *sql.Rows) ([]int64, error) {
	defer func() { _ = rows.Close() }()
	var out []int64
	for rows.Next() {
		var x int64
		if err := rows.Scan(&x); err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

// OutboxCleanupDelivered deletes one batch of old delivered rows.
func (d Dialect) OutboxCleanupDelivered(ctx context.Context, q sqlexec.Querier, t store.OutboxTable, olderThan time.Duration, limit int) (int64, error) {
	n := d.OutboxNames(t)
	cut := d.ts(time.Now().Add(-olderThan))
	var sqlText string
	if d.SQLite {
		sqlText = `DELETE FROM ` + n.Delivered + ` WHERE seq IN (SELECT seq FROM ` + n.Delivered + ` WHERE delivered_at < ? ORDER BY seq LIMIT ?)`
	} else {
		sqlText = `DELETE FROM ` + n.Delivered + ` WHERE delivered_at < ? ORDER BY seq LIMIT ?`
	}
	res, err := q.ExecContext(ctx, sqlText, cut, limit)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// RelayPool is a relay's view of the driver's pool: the database/sql
// drivers need no dedicated connections, claims being short transactions.
type RelayPool struct {
	d     Dialect
	n     Names
	cfg   store.OutboxRelayConfig
	lease time.Duration
	// write serialises the relay's write transactions on SQLite, which
	// has one writer: waiting here is cheaper than SQLite's busy handler,
	// which sleeps.
	write sync.Mutex
}

// lock takes the write lock on SQLite.
func (p *RelayPool) lock() func() {
	if !p.d.SQLite {
		return func() {}
	}
	p.write.Lock()
	return p.write.Unlock
}

// OpenRelay returns the relay pool of cfg.
func (d Dialect) OpenRelay(cfg store.OutboxRelayConfig) *RelayPool {
	lease := cfg.Lease
	if lease <= 0 {
		lease = 30 * time.Second
	}
	return &RelayPool{d: d, n: d.OutboxNames(cfg.Table), cfg: cfg, lease: lease}
}

// Acquire returns a worker's session.
func (p *RelayPool) Acquire(context.Context) (store.OutboxRelayConn, error) {
	return &relayConn{p: p}, nil
}

// Close does nothing: the pool is the driver's.
func (p *RelayPool) Close() {}

type relayConn struct {
	p     *RelayPool
	token int64 // claimed_by of the last claim
	// pending is a settlement not yet written: it goes in the transaction
	// of the next claim (one transaction per batch instead of two), or
	// alone on Commit.
	pending      *store.OutboxSettlement
	pendingToken int64
}

func newToken() int64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return int64(binary.BigEndian.Uint64(b[:]) >> 1)
}

const cols = `seq, id, topic, ordering_key, metadata, payload, attempts, last_error, created_at`

func scanRows(rows *sql.Rows, out []store.OutboxRow) ([]store.OutboxRow, error) {
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		var w store.OutboxRow
		var key, lastErr sql.NullString
		var created any
		if err := rows.Scan(&w.Seq, &w.ID, &w.Topic, &key, &w.Metadata, &w.Payload, &w.Attempts, &lastErr, &created); err != nil {
			return out, err
		}
		w.Key, w.LastError, w.CreatedAt = key.String, lastErr.String, fromTS(created)
		if w.Payload == nil {
			w.Payload = []byte{}
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// Claim claims heads, then the following rows of the keyed heads' keys,
// with a lease, in one transaction.
func (c *relayConn) Claim(ctx context.Context, limit int, buf []store.OutboxRow) ([]store.OutboxRow, error, error) {
	pending, pendingToken := c.pending, c.pendingToken
	c.pending = nil
	rows, err := c.claim(ctx, limit, buf, pending, pendingToken)
	if pending == nil {
		return rows, nil, err
	}
	if err != nil {
		// The claim failed and took the settlement with it: write it alone.
		return rows, c.settle(context.WithoutCancel(ctx), pending, pendingToken), err
	}
	return rows, nil, nil
}

func (c *relayConn) claim(ctx context.Context, limit int, buf []store.OutboxRow, pending *store.OutboxSettlement, pendingToken int64) ([]store.OutboxRow, error) {
	p, d, n := c.p, c.p.d, c.p.n
	c.token = newToken()
	nowT := time.Now()
	now, until := d.ts(nowT), d.ts(nowT.Add(p.lease))
	rows := buf
	defer p.lock()()
	free := `(c.claimed_until IS NULL OR c.claimed_until < ?)`
	heads := `FROM ` + n.Table + ` c WHERE c.next_attempt_at <= ? AND ` + free + `
  AND (c.ordering_key IS NULL OR c.seq = (SELECT MIN(p.seq) FROM ` + n.Table + ` p WHERE p.ordering_key = c.ordering_key))
  ORDER BY c.seq LIMIT ?`
	txCtx := ctx
	if pending != nil {
		txCtx = context.WithoutCancel(ctx) // a cancellation must not cut the settlement
	}
	err := sqlexec.InTx(txCtx, d.DB, d.TxOptions, func(ctx context.Context, tx *sql.Tx) error {
		if pending != nil {
			if err := c.p.settleIn(ctx, tx, pending, pendingToken); err != nil {
				return err
			}
		}
		var err error
		if d.SQLite {
			res, err := tx.QueryContext(ctx, `UPDATE `+n.Table+` SET claimed_until = ?, claimed_by = ? WHERE seq IN (SELECT c.seq `+heads+`)
RETURNING `+cols, until, c.token, now, now, limit)
			if err != nil {
				return err
			}
			if rows, err = scanRows(res, rows); err != nil {
				return err
			}
		} else {
			res, err := tx.QueryContext(ctx, `SELECT `+prefixed(cols)+` `+heads+` FOR UPDATE SKIP LOCKED`, now, now, limit)
			if err != nil {
				return err
			}
			if rows, err = scanRows(res, rows); err != nil {
				return err
			}
		}
		var keys []any
		seen := map[string]bool{}
		for i := range rows {
			if k := rows[i].Key; k != "" && !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
		if len(keys) > 0 && len(rows) < limit {
			headSeqs := make([]any, len(rows))
			for i := range rows {
				headSeqs[i] = rows[i].Seq
			}
			// Followers: the rows after the keyed heads this claim holds,
			// lowest seq first across keys (so each key's share is a prefix
			// of its rows).
			follow := `FROM ` + n.Table + ` c WHERE c.ordering_key IN (` + placeholders(len(keys)) + `) AND c.seq NOT IN (` + placeholders(len(headSeqs)) + `)
  AND ` + free + ` ORDER BY c.seq LIMIT ?`
			args := append(append(append([]any{}, keys...), headSeqs...), now, limit-len(rows))
			var res *sql.Rows
			if d.SQLite {
				res, err = tx.QueryContext(ctx, `UPDATE `+n.Table+` SET claimed_until = ?, claimed_by = ? WHERE seq IN (SELECT c.seq `+follow+`)
RETURNING `+cols, append([]any{until, c.token}, args...)...)
			} else {
				res, err = tx.QueryContext(ctx, `SELECT `+prefixed(cols)+` `+follow+` FOR UPDATE`, args...)
			}
			if err != nil {
				return err
			}
			if rows, err = scanRows(res, rows); err != nil {
				return err
			}
		}
		if !d.SQLite && len(rows) > 0 {
			seqs := make([]int64, len(rows))
			for i := range rows {
				seqs[i] = rows[i].Seq
			}
			_, err = tx.ExecContext(ctx, `UPDATE `+n.Table+` SET claimed_until = ?, claimed_by = ? WHERE seq IN (`+placeholders(len(seqs))+`)`,
				append([]any{until, c.token}, int64Args(seqs)...)...)
		}
		return err
	})
	if err != nil {
		return buf[:0], err
	}
	return rows, nil
}

func prefixed(cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = "c." + parts[i]
	}
	return strings.Join(parts, ", ")
}

// Settle keeps the settlement for the transaction of the next claim (or
// Commit): it reports committed=false.
func (c *relayConn) Settle(_ context.Context, s *store.OutboxSettlement) (bool, error) {
	c.pending, c.pendingToken = s, c.token
	return false, nil
}

// Commit writes the pending settlement alone.
func (c *relayConn) Commit(ctx context.Context) error {
	s := c.pending
	c.pending = nil
	if s == nil {
		return nil
	}
	return c.settle(ctx, s, c.pendingToken)
}

// Release writes a settlement still pending (best effort: if it fails, the
// rows are claimed again once their lease expired).
func (c *relayConn) Release() {
	if c.pending != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Commit(ctx)
	}
}

func (c *relayConn) settle(ctx context.Context, s *store.OutboxSettlement, token int64) error {
	defer c.p.lock()()
	return sqlexec.InTx(ctx, c.p.d.DB, c.p.d.TxOptions, func(ctx context.Context, tx *sql.Tx) error {
		return c.p.settleIn(ctx, tx, s, token)
	})
}

// settleIn removes delivered rows, puts failed and untried rows back and
// moves dead rows, in tx, for the rows the claim with token still holds (a
// row whose lease expired and was claimed again is the new claimer's).
func (p *RelayPool) settleIn(ctx context.Context, tx *sql.Tx, s *store.OutboxSettlement, token int64) error {
	d, n := p.d, p.n
	nowT := time.Now()
	now := d.ts(nowT)
	if len(s.Delivered) > 0 {
		in := ` WHERE claimed_by = ? AND seq IN (` + placeholders(len(s.Delivered)) + `)`
		args := append([]any{token}, int64Args(s.Delivered)...)
		if p.cfg.Retention {
			if _, err := tx.ExecContext(ctx, `INSERT INTO `+n.Delivered+` (seq, id, topic, ordering_key, metadata, payload, attempts, created_at, delivered_at)
SELECT seq, id, topic, ordering_key, metadata, payload, attempts + 1, created_at, ? FROM `+n.Table+in, append([]any{now}, args...)...); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+n.Table+in, args...); err != nil {
			return err
		}
	}
	for i := range s.Retry {
		r := &s.Retry[i]
		var lastErr any
		if r.Row.LastError != "" {
			lastErr = r.Row.LastError
		}
		if _, err := tx.ExecContext(ctx, `UPDATE `+n.Table+` SET attempts = ?, last_error = ?, next_attempt_at = ?, claimed_until = NULL, claimed_by = NULL
WHERE seq = ? AND claimed_by = ?`, r.Row.Attempts, lastErr, d.ts(nowT.Add(r.Delay)), r.Row.Seq, token); err != nil {
			return err
		}
	}
	for i := range s.Dead {
		w := &s.Dead[i]
		res, err := tx.ExecContext(ctx, `INSERT INTO `+n.Dead+` (seq, id, topic, ordering_key, metadata, payload, attempts, last_error, created_at, dead_at)
SELECT seq, id, topic, ordering_key, metadata, payload, ?, ?, created_at, ? FROM `+n.Table+` WHERE seq = ? AND claimed_by = ?`,
			w.Attempts, w.LastError, now, w.Seq, token)
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k == 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+n.Table+` WHERE seq = ? AND claimed_by = ?`, w.Seq, token); err != nil {
			return err
		}
	}
	return nil
}

// InboxName quotes an inbox table.
func (d Dialect) InboxName(t store.InboxTable) string { return d.quote(t.Schema, t.Table) }

// InboxMigrations returns the inbox table's migrations.
func (d Dialect) InboxMigrations(t store.InboxTable) []store.Migration {
	n := d.InboxName(t)
	if d.SQLite {
		return []store.Migration{{Version: 1, Name: "create", SQL: `CREATE TABLE IF NOT EXISTS ` + n + ` (
	consumer    TEXT    NOT NULL,
	message_id  TEXT    NOT NULL,
	received_at INTEGER NOT NULL,
	PRIMARY KEY (consumer, message_id)
)
-- +step
CREATE INDEX IF NOT EXISTS "` + t.Table + `_recv_at" ON ` + n + ` (received_at)`}}
	}
	return []store.Migration{{Version: 1, Name: "create", SQL: `CREATE TABLE IF NOT EXISTS ` + n + ` (
	consumer    VARCHAR(255) NOT NULL,
	message_id  VARCHAR(255) NOT NULL,
	received_at DATETIME(6)  NOT NULL,
	PRIMARY KEY (consumer, message_id),
	KEY ` + "`" + t.Table + "_recv_at`" + ` (received_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`}}
}

// InboxClaim records (consumer, messageID) and reports whether it is new.
func (d Dialect) InboxClaim(ctx context.Context, q sqlexec.Querier, t store.InboxTable, consumer, messageID string) (bool, error) {
	n := d.InboxName(t)
	sqlText := `INSERT INTO ` + n + ` (consumer, message_id, received_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`
	if !d.SQLite {
		// Not INSERT IGNORE, which would also turn a too-long id into a
		// warning; without CLIENT_FOUND_ROWS a duplicate affects 0 rows.
		sqlText = `INSERT INTO ` + n + ` (consumer, message_id, received_at) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE consumer = consumer`
	}
	res, err := q.ExecContext(ctx, sqlText, consumer, messageID, d.ts(time.Now()))
	if err != nil {
		return false, err
	}
	k, err := res.RowsAffected()
	return k == 1, err
}

// InboxCleanup deletes one batch of old inbox rows.
func (d Dialect) InboxCleanup(ctx context.Context, q sqlexec.Querier, t store.InboxTable, olderThan time.Duration, limit int) (int64, error) {
	n := d.InboxName(t)
	cut := d.ts(time.Now().Add(-olderThan))
	sqlText := `DELETE FROM ` + n + ` WHERE received_at < ? LIMIT ?`
	if d.SQLite {
		sqlText = `DELETE FROM ` + n + ` WHERE rowid IN (SELECT rowid FROM ` + n + ` WHERE received_at < ? LIMIT ?)`
	}
	res, err := q.ExecContext(ctx, sqlText, cut, limit)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
