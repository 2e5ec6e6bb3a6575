// Relay, settling failures: rows whose publish failed go back into the
// outbox with attempts+1 and a backoff, or into the dead table after the last
// attempt; rows not attempted go back untouched. All of it happens in the
// claiming transaction, before its COMMIT.

package outbox

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// settleFailures writes failed and put-back rows back into the outbox (with
// their original seq, so order is kept) and dead rows into the dead table,
// in the claiming transaction.
func (r *Relay) settleFailures(ctx context.Context, tx *pgxpool.Conn, claimed []row, outcome []uint8, errText []string, back, dead []int) error {
	if r.cfg.retention > 0 {
		seqs := make([]int64, 0, len(back)+len(dead))
		for _, i := range append(append([]int(nil), back...), dead...) {
			seqs = append(seqs, claimed[i].seq)
		}
		if _, err := tx.Exec(ctx, r.unarchiveSQL, seqs); err != nil {
			return err
		}
	}
	if len(back) > 0 {
		n := len(back)
		s, ids, topics, keys, mds := make([]int64, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		ps, as, ds, es, cs := make([][]byte, n), make([]int32, n), make([]float64, n), make([]string, n), make([]time.Time, n)
		for j, i := range back {
			w := &claimed[i]
			s[j], ids[j], topics[j], mds[j], ps[j], as[j], cs[j] = w.seq, w.id, w.topic, w.metadata, w.payload, w.attempts, w.createdAt
			if w.key != nil {
				keys[j] = *w.key
			}
			if w.lastError != nil {
				es[j] = *w.lastError
			}
			if outcome[i] == failed {
				as[j] = w.attempts + 1
				ds[j] = r.backoff(int(as[j])).Seconds()
				es[j] = errText[i]
			}
		}
		if _, err := tx.Exec(ctx, r.reinsertSQL, s, ids, topics, keys, mds, ps, as, ds, es, cs); err != nil {
			return err
		}
	}
	if len(dead) > 0 {
		n := len(dead)
		s, ids, topics, keys, mds := make([]int64, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		ps, as, es, cs := make([][]byte, n), make([]int32, n), make([]string, n), make([]time.Time, n)
		for j, i := range dead {
			w := &claimed[i]
			s[j], ids[j], topics[j], mds[j], ps[j], as[j], es[j], cs[j] = w.seq, w.id, w.topic, w.metadata, w.payload, w.attempts+1, errText[i], w.createdAt
			if w.key != nil {
				keys[j] = *w.key
			}
		}
		if _, err := tx.Exec(ctx, r.deadSQL, s, ids, topics, keys, mds, ps, as, es, cs); err != nil {
			return err
		}
	}
	return nil
}

// backoff returns the wait before attempt number attempts+1: backoffMin
// doubled per earlier failure, capped at backoffMax, minus up to 20% jitter.
func (r *Relay) backoff(attempts int) time.Duration {
	d := r.cfg.backoffMin
	for i := 1; i < attempts && d < r.cfg.backoffMax; i++ {
		d *= 2
	}
	d = min(d, r.cfg.backoffMax)
	return d - time.Duration(rand.Float64()*0.2*float64(d))
}
