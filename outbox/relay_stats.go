// Relay, statistics: a loop that reads the table's pending/oldest figures
// for the relay's gauges.

package outbox

import "context"

// statsLoop refreshes the table statistics behind the relay's gauges every
// statsEvery until ctx is cancelled.
func (r *Relay) statsLoop(ctx context.Context) {
	for {
		st, err := queryStats(ctx, r.st.Executor(), r.t)
		if err == nil {
			r.m.setStats(st)
		} else if ctx.Err() == nil {
			r.m.statsOK.Store(false)
			r.log.Warn("outbox relay cannot read table statistics", "error", err)
		}
		if !sleep(ctx, r.cfg.statsEvery) {
			return
		}
	}
}
