// Relay, settling: the outcome of a published batch goes to the store in
// one settlement: delivered rows are removed (or kept in the delivered
// table), failed rows go back with attempts+1 and a backoff, or to the dead
// table after the last attempt, and rows not attempted go back untouched.

package outbox

import (
	"math/rand/v2"
	"time"

	"github.com/hexeract/hexeract/store"
)

// settlement builds the store settlement of a batch from its outcomes.
func (r *Relay) settlement(claimed []store.OutboxRow, outcome []uint8, errText []string, p *inflight) *store.OutboxSettlement {
	s := &store.OutboxSettlement{Claimed: claimed, Delivered: make([]int64, 0, len(claimed))}
	for i := range claimed {
		w := claimed[i]
		switch outcome[i] {
		case delivered:
			p.delivered++
			s.Delivered = append(s.Delivered, w.Seq)
		case failed:
			p.failed++
			w.Attempts++
			w.LastError = errText[i]
			if int(w.Attempts) >= r.cfg.maxAttempts {
				s.Dead = append(s.Dead, w)
				p.deadN++
				p.deadErr = errText[i]
			} else {
				s.Retry = append(s.Retry, store.OutboxRetry{Row: w, Delay: r.backoff(int(w.Attempts))})
			}
		case putBack:
			s.Retry = append(s.Retry, store.OutboxRetry{Row: w})
		}
	}
	return s
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
