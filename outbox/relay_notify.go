// Relay, notifications: a dedicated connection LISTENs on the outbox's
// channel (through internal/pgnotify, shared with the scheduler) and wakes a
// worker on every NOTIFY; while it is down, the workers keep polling at the
// poll interval.

package outbox

import (
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hexeract/hexeract/internal/pgnotify"
)

// listener returns the relay's notification listener: a connection opened
// with cfg that LISTENs on the outbox channel and wakes a worker on every
// notification, and once after each (re)connection since rows may have
// arrived while nobody listened. It reconnects with backoff after a loss.
func (r *Relay) listener(cfg *pgx.ConnConfig) (*pgnotify.Listener, error) {
	return pgnotify.New(pgnotify.ConnectConfig(cfg), []string{r.t.channel},
		func(*pgconn.Notification) { r.wake() },
		pgnotify.WithLogger(r.log.With("component", "outbox relay")),
		pgnotify.WithOnListen(r.wake))
}
