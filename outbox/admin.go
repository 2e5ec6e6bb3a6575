package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hexeract/hexeract/store"
)

// Stats describes the state of an outbox table.
type Stats struct {
	Table            string        // configured table name
	Pending          int64         // rows waiting to be delivered (including rows waiting for a retry)
	Retrying         int64         // pending rows that failed at least once
	OldestPendingAge time.Duration // age of the oldest pending row (0 when none)
	Dead             int64         // rows in the dead table
	Delivered        int64         // rows kept in the delivered table (with WithRetention)
}

func queryStats(ctx context.Context, ex store.Executor, t tables) (Stats, error) {
	st, err := ex.OutboxStats(ctx, t.st)
	if err != nil {
		return Stats{}, fmt.Errorf("outbox %s: stats: %w", t.name, err)
	}
	return Stats{Table: t.name.String(), Pending: st.Pending, Retrying: st.Retrying, OldestPendingAge: st.OldestPendingAge, Dead: st.Dead, Delivered: st.Delivered}, nil
}

// Stats counts the pending, dead and kept-delivered rows of the outbox and
// measures the age of the oldest pending row (by the database clock).
func (o *Outbox[TTx]) Stats(ctx context.Context) (Stats, error) {
	return queryStats(ctx, o.drv.Executor(), o.t)
}

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
func (o *Outbox[TTx]) DeadLetters(ctx context.Context, afterSeq int64, limit int) ([]DeadRow, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := o.drv.Executor().OutboxDeadList(ctx, o.t.st, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("outbox %s: list dead rows: %w", o.t.name, err)
	}
	out := make([]DeadRow, len(rows))
	for i, d := range rows {
		// Decoded as the relay does, so non-string values (rows written
		// by hand) show as their JSON text instead of failing the page.
		out[i] = DeadRow{Seq: d.Seq, ID: d.ID, Topic: d.Topic, OrderingKey: d.OrderingKey, Metadata: decodeMetadata(d.Metadata),
			Payload: d.Payload, Attempts: d.Attempts, LastError: d.LastError, CreatedAt: d.CreatedAt, DeadAt: d.DeadAt}
	}
	return out, nil
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
func (o *Outbox[TTx]) ReplayDead(ctx context.Context, ids []string, batch int, progress func(done int64)) (int64, error) {
	return o.moveDead(ctx, ids, batch, progress, true)
}

// PurgeDead deletes dead rows: those with the given ids, or all of them
// when ids is empty. It works in batches like [Outbox.ReplayDead] and
// returns the number of rows deleted; cancelling ctx stops it between
// transactions, as for ReplayDead.
func (o *Outbox[TTx]) PurgeDead(ctx context.Context, ids []string, batch int, progress func(done int64)) (int64, error) {
	return o.moveDead(ctx, ids, batch, progress, false)
}

func (o *Outbox[TTx]) moveDead(ctx context.Context, ids []string, batch int, progress func(int64), replay bool) (int64, error) {
	if batch <= 0 {
		batch = 1000
	}
	var total int64
	// Each batch runs to its end once started: a cancel in the middle of
	// the statement could leave the caller not knowing whether it
	// committed. ctx is checked between batches instead.
	qctx := context.WithoutCancel(ctx)
	ex := o.drv.Executor()
	for {
		if err := ctx.Err(); err != nil {
			if replay && total > 0 {
				o.Signal()
			}
			return total, err
		}
		n, err := ex.OutboxDeadMove(qctx, o.t.st, ids, batch, replay, o.notify != notifyOff)
		if err != nil {
			what := "purge"
			if replay {
				what = "replay"
			}
			return total, fmt.Errorf("outbox %s: %s dead rows: %w", o.t.name, what, err)
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
func (o *Outbox[TTx]) CleanupDelivered(ctx context.Context, retention time.Duration) (int64, error) {
	if retention < 0 {
		return 0, errors.New("outbox: negative retention")
	}
	return cleanupDelivered(ctx, o.drv.Executor(), o.t, retention)
}

const cleanupBatch = 5000

func cleanupDelivered(ctx context.Context, ex store.Executor, t tables, retention time.Duration) (int64, error) {
	var total int64
	for {
		n, err := ex.OutboxCleanupDelivered(ctx, t.st, retention, cleanupBatch)
		if err != nil {
			return total, fmt.Errorf("outbox %s: clean delivered rows: %w", t.name, err)
		}
		total += n
		if n < cleanupBatch {
			return total, nil
		}
	}
}
