// Relay, draining: the loop that claims and settles batches on one
// connection of the store's relay pool (on PostgreSQL the COMMIT of a batch
// travels in one round trip with the BEGIN and claim of the next), and
// records each batch's outcome once it is committed.

package outbox

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/hexeract/hexeract/store"
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
// worker. A batch counts as delivered once its settlement committed.
func (r *Relay) drain(ctx context.Context, db store.OutboxRelayPool) error {
	conn, err := db.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	// Release rolls back whatever is still open.
	defer conn.Release()
	bg := context.WithoutCancel(ctx)
	var pending *inflight
	buf := make([]store.OutboxRow, 0, r.cfg.batchSize) // reused by every batch of this call
	for {
		if pending != nil && ctx.Err() != nil {
			return r.commit(bg, conn, pending) // stopping: commit what the broker acknowledged
		}
		clear(buf)
		claimed, prev, err := conn.Claim(ctx, r.cfg.batchSize, buf[:0])
		if pending != nil {
			r.finish(pending, prev)
			if prev != nil {
				return prev
			}
		}
		if err != nil {
			return fmt.Errorf("claim: %w", err)
		}
		if len(claimed) == 0 {
			return nil
		}
		p, committed, err := r.process(ctx, bg, conn, claimed)
		if err != nil {
			return err
		}
		if committed {
			r.finish(p, nil)
			p = nil
		}
		switch {
		case len(claimed) == r.cfg.batchSize:
			r.wake() // more rows are likely waiting: bring in another worker
		case !keyed(claimed):
			// The claim took every claimable row: the backlog is drained.
			if p == nil {
				return nil
			}
			return r.commit(bg, conn, p)
		}
		// A full batch, or one with keyed rows: committing it makes the
		// next rows of its keys claimable, and no other worker could claim
		// them meanwhile. Claim again at once (on PostgreSQL in the
		// COMMIT's round trip).
		pending = p
	}
}

// keyed reports whether a claimed batch holds a row with an ordering key.
func keyed(claimed []store.OutboxRow) bool {
	for i := range claimed {
		if claimed[i].Key != "" {
			return true
		}
	}
	return false
}

// commit commits the batch p alone.
func (r *Relay) commit(ctx context.Context, conn store.OutboxRelayConn, p *inflight) error {
	err := conn.Commit(ctx)
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
