// Relay, notifications: a dedicated connection LISTENs on the outbox's
// channel and wakes a worker on every NOTIFY; while it is down, the workers
// keep polling at the poll interval.

package outbox

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// listen keeps a dedicated connection LISTENing on the outbox channel and
// wakes a worker on every notification. It reconnects after errors; the
// workers' polling covers the gap.
func (r *Relay) listen(ctx context.Context, cfg *pgx.ConnConfig) {
	for ctx.Err() == nil {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			_, err = conn.Exec(ctx, `LISTEN "`+r.t.channel+`"`)
			if err == nil {
				r.wake() // rows may have arrived while not listening
				for {
					if _, err = conn.WaitForNotification(ctx); err != nil {
						break
					}
					r.wake()
				}
			}
			_ = conn.Close(context.WithoutCancel(ctx))
		}
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("outbox relay lost its notification connection; polling until it is back", "error", err)
		if !sleep(ctx, time.Second) {
			return
		}
	}
}
