package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Stats describes the state of an outbox table.
type Stats struct {
	Table            string        // configured table name
	Pending          int64         // rows waiting to be delivered (including rows waiting for a retry)
	Retrying         int64         // pending rows that failed at least once
	OldestPendingAge time.Duration // age of the oldest pending row (0 when none)
	Dead             int64         // rows in the dead table
	Delivered        int64         // rows kept in the delivered table (with WithRetention)
}

func queryStats(ctx context.Context, q querier, t tables) (Stats, error) {
	st := Stats{Table: t.name.String()}
	var age float64
	err := q.QueryRow(ctx, `SELECT
  (SELECT count(*) FROM `+t.table+`),
  (SELECT count(*) FROM `+t.table+` WHERE attempts > 0),
  COALESCE((SELECT EXTRACT(EPOCH FROM now() - min(created_at))::float8 FROM `+t.table+`), 0),
  (SELECT count(*) FROM `+t.dead+`),
  (SELECT count(*) FROM `+t.delivered+`)`).Scan(&st.Pending, &st.Retrying, &age, &st.Dead, &st.Delivered)
	if err != nil {
		return Stats{}, fmt.Errorf("outbox %s: stats: %w", t.name, err)
	}
	st.OldestPendingAge = time.Duration(age * float64(time.Second))
	return st, nil
}

// Stats counts the pending, dead and kept-delivered rows of the outbox and
// measures the age of the oldest pending row (by the database clock).
func (o *Outbox) Stats(ctx context.Context) (Stats, error) { return queryStats(ctx, o.pool, o.t) }

// DeadRow is a row of the dead table: a message whose publish failed
// MaxAttempts times.
type DeadRow struct {
	Seq         int64
	ID          string
	Topic       string
	OrderingKey string
	Metadata    map[string]string
	Payload     []byte
	Attempts    int
	LastError   string
	CreatedAt   time.Time
	DeadAt      time.Time
}

// DeadLetters lists up to limit dead rows, oldest first, starting after
// the row with sequence number afterSeq (0 for the first page).
func (o *Outbox) DeadLetters(ctx context.Context, afterSeq int64, limit int) ([]DeadRow, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := o.pool.Query(ctx, `SELECT seq, id, topic, COALESCE(ordering_key, ''), metadata::text, payload, attempts,
  COALESCE(last_error, ''), created_at, dead_at FROM `+o.t.dead+` WHERE seq > $1 ORDER BY seq LIMIT $2`, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("outbox %s: list dead rows: %w", o.t.name, err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (DeadRow, error) {
		var d DeadRow
		var md string
		err := row.Scan(&d.Seq, &d.ID, &d.Topic, &d.OrderingKey, &md, &d.Payload, &d.Attempts, &d.LastError, &d.CreatedAt, &d.DeadAt)
		// Decoded as the relay does, so non-string values (rows written
		// by hand) show as their JSON text instead of failing the page.
		d.Metadata = decodeMetadata(md)
		return d, err
	})
}

// ReplayDead moves dead rows back into the outbox with their attempts
// reset, so relays deliver them again. With ids it replays those messages;
// without, every dead row. It moves at most batch rows per transaction
// (default 1000), calls progress (if not nil) after each transaction with
// the running total, and returns the number of rows replayed. Replayed
// rows get new sequence numbers, in the order of their original ones: they
// are delivered after the rows already pending, and rows of one ordering
// key keep their order among themselves. A replayed row is pending from the
// replay on: its created_at is the time of the replay, so
// Stats.OldestPendingAge does not show it as old at once.
//
// Cancelling ctx stops it between transactions: the batch in hand commits
// whole (so the returned count is exactly what moved), and it returns that
// count with ctx's error.
func (o *Outbox) ReplayDead(ctx context.Context, ids []string, batch int, progress func(done int64)) (int64, error) {
	return o.moveDead(ctx, ids, batch, progress, true)
}

// PurgeDead deletes dead rows: those with the given ids, or all of them
// when ids is empty. It works in batches like [Outbox.ReplayDead] and
// returns the number of rows deleted; cancelling ctx stops it between
// transactions, as for ReplayDead.
func (o *Outbox) PurgeDead(ctx context.Context, ids []string, batch int, progress func(done int64)) (int64, error) {
	return o.moveDead(ctx, ids, batch, progress, false)
}

func (o *Outbox) moveDead(ctx context.Context, ids []string, batch int, progress func(int64), replay bool) (int64, error) {
	if batch <= 0 {
		batch = 1000
	}
	filter := ``
	args := []any{batch}
	if len(ids) > 0 {
		filter = `WHERE id = ANY($2::text[])`
		args = append(args, ids)
	}
	del := `DELETE FROM ` + o.t.dead + ` x USING (SELECT seq FROM ` + o.t.dead + ` ` + filter +
		` ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED) s WHERE x.seq = s.seq`
	sql := del
	if replay {
		notify := `''`
		if o.notify != notifyOff {
			notify = `pg_notify('` + o.t.channel + `', '')::text`
		}
		sql = `WITH d AS (` + del + ` RETURNING x.seq, x.id, x.topic, x.ordering_key, x.metadata, x.payload, x.created_at),
ins AS (INSERT INTO ` + o.t.table + ` (id, topic, ordering_key, metadata, payload, created_at)
  SELECT id, topic, ordering_key, metadata, payload, now() FROM d ORDER BY seq RETURNING 1)
SELECT (SELECT count(*) FROM ins), ` + notify
	}
	var total int64
	// Each batch runs to its end once started: a cancel in the middle of
	// the statement could leave the caller not knowing whether it
	// committed. ctx is checked between batches instead.
	qctx := context.WithoutCancel(ctx)
	for {
		if err := ctx.Err(); err != nil {
			if replay && total > 0 {
				o.Signal()
			}
			return total, err
		}
		var n int64
		if replay {
			var ignored string
			if err := o.pool.QueryRow(qctx, sql, args...).Scan(&n, &ignored); err != nil {
				return total, fmt.Errorf("outbox %s: replay dead rows: %w", o.t.name, err)
			}
		} else {
			tag, err := o.pool.Exec(qctx, sql, args...)
			if err != nil {
				return total, fmt.Errorf("outbox %s: purge dead rows: %w", o.t.name, err)
			}
			n = tag.RowsAffected()
		}
		total += n
		if progress != nil && n > 0 {
			progress(total)
		}
		if n < int64(batch) {
			if replay && total > 0 {
				o.Signal()
			}
			return total, nil
		}
	}
}

// CleanupDelivered deletes rows of the delivered table older than
// retention, in batches, and returns how many it deleted. A relay with
// [WithRetention] does this on its own.
func (o *Outbox) CleanupDelivered(ctx context.Context, retention time.Duration) (int64, error) {
	if retention < 0 {
		return 0, errors.New("outbox: negative retention")
	}
	return cleanupDelivered(ctx, o.pool, o.t, retention)
}

const cleanupBatch = 5000

func cleanupDelivered(ctx context.Context, q querier, t tables, retention time.Duration) (int64, error) {
	sql := `DELETE FROM ` + t.delivered + ` x USING (SELECT seq FROM ` + t.delivered +
		` WHERE delivered_at < now() - make_interval(secs => $1) ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED) s WHERE x.seq = s.seq`
	var total int64
	for {
		tag, err := q.Exec(ctx, sql, retention.Seconds(), cleanupBatch)
		if err != nil {
			return total, fmt.Errorf("outbox %s: clean delivered rows: %w", t.name, err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < cleanupBatch {
			return total, nil
		}
	}
}
