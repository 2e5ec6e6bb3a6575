// Relay, draining: the loop that claims and settles batches on one
// connection, sending the COMMIT of a batch in one round trip with the BEGIN
// and claim of the next, and recording each batch's outcome once its COMMIT
// returned.

package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"
)

// inflight is a batch that was published and settled and waits for its
// COMMIT.
type inflight struct {
	start                    time.Time
	span                     trace.Span
	delivered, failed, deadN int
	deadErr                  string
}

// drain runs batches on one connection until a claim finds no row, or
// fewer rows than the batch size and none with an ordering key (the
// backlog is drained), or an error occurs. A full claim also wakes another
// worker. While drain goes on, the COMMIT of a batch travels in one round
// trip with the BEGIN and the claim of the next; its result is checked
// before the batch counts as delivered.
func (r *Relay) drain(ctx context.Context, db *pgxpool.Pool) error {
	conn, err := db.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	// A connection released inside a transaction is closed by the pool,
	// so every early return rolls the claim back.
	defer conn.Release()
	bg := context.WithoutCancel(ctx)
	var pending *inflight
	buf := make([]row, 0, r.cfg.batchSize) // reused by every batch of this call
	for {
		if pending != nil && ctx.Err() != nil {
			return r.commit(bg, conn, pending) // stopping: commit what the broker acknowledged
		}
		var b pgx.Batch
		sendCtx := ctx
		if pending != nil {
			b.Queue("COMMIT")
			sendCtx = bg // a cancellation must not cut the commit
		}
		b.Queue("BEGIN")
		b.Queue(r.claimSQL, r.cfg.batchSize)
		br := conn.SendBatch(sendCtx, &b)
		if pending != nil {
			tag, err := br.Exec()
			if err == nil && tag.String() != "COMMIT" {
				err = fmt.Errorf("transaction aborted (%s)", tag)
			}
			r.finish(pending, err)
			if err != nil {
				_ = br.Close()
				return err
			}
		}
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return fmt.Errorf("begin: %w", err)
		}
		rows, err := br.Query()
		if err != nil {
			_ = br.Close()
			return fmt.Errorf("claim: %w", err)
		}
		clear(buf)
		claimed, err := scanRows(rows, buf[:0])
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("claim: %w", err)
		}
		if len(claimed) == 0 {
			_, err := conn.Exec(bg, "ROLLBACK")
			return err
		}
		p, err := r.process(ctx, bg, conn, claimed)
		if err != nil {
			return err
		}
		switch {
		case len(claimed) == r.cfg.batchSize:
			r.wake() // more rows are likely waiting: bring in another worker
		case !keyed(claimed):
			// The claim took every claimable row: the backlog is drained.
			return r.commit(bg, conn, p)
		}
		// A full batch, or one with keyed rows: committing it makes the
		// next rows of its keys claimable, and no other worker could claim
		// them meanwhile. Claim again at once, in the COMMIT's round trip.
		pending = p
	}
}

// keyed reports whether a claimed batch holds a row with an ordering key.
func keyed(claimed []row) bool {
	for i := range claimed {
		if claimed[i].key != nil {
			return true
		}
	}
	return false
}

// commit commits the batch p alone.
func (r *Relay) commit(ctx context.Context, conn *pgxpool.Conn, p *inflight) error {
	tag, err := conn.Exec(ctx, "COMMIT")
	if err == nil && tag.String() != "COMMIT" {
		err = fmt.Errorf("transaction aborted (%s)", tag)
	}
	r.finish(p, err)
	return err
}

// finish records the outcome of a batch once its COMMIT returned.
func (r *Relay) finish(p *inflight, err error) {
	defer p.span.End()
	mctx := context.Background()
	if err != nil {
		p.span.RecordError(err)
		err = fmt.Errorf("commit after publishing %d messages (they will be published again): %w", p.delivered, err)
		r.log.Warn("outbox relay commit failed", "error", err)
		return
	}
	r.m.relayed.Add(mctx, int64(p.delivered), r.m.attrs)
	if p.failed > 0 {
		r.m.failed.Add(mctx, int64(p.failed), r.m.attrs)
	}
	if p.deadN > 0 {
		r.m.dead.Add(mctx, int64(p.deadN), r.m.attrs)
		r.log.Error("outbox rows moved to the dead table after max attempts", "count", p.deadN, "dead_table", r.t.name.String()+"_dead", "last_error", p.deadErr)
	}
	r.m.batch.Record(mctx, time.Since(p.start).Seconds(), r.m.attrs)
	r.m.lastProgress.Store(time.Now().UnixNano())
}
