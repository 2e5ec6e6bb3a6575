// Relay, claiming: the SQL statements a relay runs (claim, and the
// settlement statements built beside it from the same table names) and the
// decoding of claimed rows, with a fast path for the binary row layout.

package outbox

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// returning is the column list every claim returns, in the order scanRows
// and row.decode read it.
const returning = `d.seq, d.id, d.topic, d.ordering_key, d.metadata::text, d.payload, d.attempts, d.last_error, d.created_at`

// buildSQL builds the relay's statements once, from its table names: the
// claim, and the reinsert, dead and unarchive statements that settleFailures
// runs.
func (r *Relay) buildSQL() {
	t := r.t
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
	// without the key lock committed a key's rows out of seq order). A hot key thus
	// moves in full batches, and a batch holds as few keys as fill it, so
	// the other workers find other keys' heads unlocked.
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
	claim := func(sel string) string {
		// The claimed rows are locked by this transaction, so their ctids
		// stay valid: the DELETE finds them with a TID scan.
		del := `DELETE FROM ` + t.table + ` d WHERE d.ctid = ANY(ARRAY(` + sel + `)) RETURNING `
		if r.cfg.retention == 0 {
			return del + returning
		}
		return `WITH d AS (` + del + `d.*), a AS (
INSERT INTO ` + t.delivered + ` (seq, id, topic, ordering_key, metadata, payload, attempts, created_at)
SELECT seq, id, topic, ordering_key, metadata, payload, attempts + 1, created_at FROM d)
SELECT ` + returning + ` FROM d`
	}
	r.claimSQL = claim(sel)
	// The backoff counts from this statement (after the publish failed),
	// not from now(), the start of a claiming transaction that stayed open
	// while the broker was called.
	r.reinsertSQL = `INSERT INTO ` + t.table + ` (seq, id, topic, ordering_key, metadata, payload, attempts, next_attempt_at, last_error, created_at)
SELECT u.s, u.i, u.t, NULLIF(u.k, ''), u.m::jsonb, u.p, u.a, statement_timestamp() + make_interval(secs => u.d), NULLIF(u.e, ''), u.c
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::int[], $8::float8[], $9::text[], $10::timestamptz[])
  AS u(s, i, t, k, m, p, a, d, e, c)`
	r.deadSQL = `INSERT INTO ` + t.dead + ` (seq, id, topic, ordering_key, metadata, payload, attempts, last_error, created_at)
SELECT u.s, u.i, u.t, NULLIF(u.k, ''), u.m::jsonb, u.p, u.a, NULLIF(u.e, ''), u.c
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::int[], $8::text[], $9::timestamptz[])
  AS u(s, i, t, k, m, p, a, e, c)`
	r.unarchiveSQL = `DELETE FROM ` + t.delivered + ` WHERE seq = ANY($1::bigint[])`
}

// row is one claimed outbox row.
type row struct {
	seq       int64
	id        string
	topic     string
	key       *string
	metadata  string
	payload   []byte
	attempts  int32
	lastError *string
	createdAt time.Time
}

// scanRows appends the claimed rows to out, decoding them directly when
// their layout allows (binaryLayout) and through rows.Scan otherwise.
func scanRows(rows pgx.Rows, out []row) ([]row, error) {
	defer rows.Close()
	fast := binaryLayout(rows.FieldDescriptions())
	topic := ""
	for rows.Next() {
		var w row
		if fast {
			if err := w.decode(rows.RawValues(), topic); err != nil {
				return out, err
			}
			topic = w.topic
		} else if err := rows.Scan(&w.seq, &w.id, &w.topic, &w.key, &w.metadata, &w.payload, &w.attempts, &w.lastError, &w.createdAt); err != nil {
			return out, err
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// binaryLayout reports whether the claim's result columns arrive in the
// formats row.decode reads: binary int8, int4 and timestamptz; text and
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

var errRowLayout = errors.New("outbox: unexpected claim row layout")

// decode reads one claim row from its raw column values (see binaryLayout),
// without the per-column scan plans of rows.Scan.
// The topic string of the previous row is reused when equal (batches are
// usually one topic).
func (w *row) decode(v [][]byte, prevTopic string) error {
	if len(v[0]) != 8 || len(v[6]) != 4 || len(v[8]) != 8 || v[1] == nil || v[2] == nil || v[4] == nil {
		return errRowLayout
	}
	w.seq = int64(binary.BigEndian.Uint64(v[0]))
	w.id = string(v[1])
	if string(v[2]) == prevTopic {
		w.topic = prevTopic
	} else {
		w.topic = string(v[2])
	}
	if v[3] != nil {
		k := string(v[3])
		w.key = &k
	}
	w.metadata = string(v[4])
	w.payload = append(make([]byte, 0, len(v[5])), v[5]...)
	w.attempts = int32(binary.BigEndian.Uint32(v[6]))
	if v[7] != nil {
		e := string(v[7])
		w.lastError = &e
	}
	w.createdAt = time.UnixMicro(int64(binary.BigEndian.Uint64(v[8])) + pgEpoch)
	return nil
}
