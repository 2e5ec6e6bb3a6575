// Relay, retention: with WithRetention, a loop that trims delivered rows
// older than the retention from the delivered table.

package outbox

import (
	"context"
	"time"
)

// retentionLoop deletes delivered rows older than the retention, every tenth
// of the retention (between 1 s and 1 min), until ctx is cancelled.
func (r *Relay) retentionLoop(ctx context.Context) {
	every := min(max(r.cfg.retention/10, time.Second), time.Minute)
	for {
		if _, err := cleanupDelivered(ctx, r.st.Executor(), r.t, r.cfg.retention); err != nil && ctx.Err() == nil {
			r.log.Warn("outbox retention cleanup failed", "error", err)
		}
		if !sleep(ctx, every) {
			return
		}
	}
}
