// Relay, notifications: the relay listens on the outbox's channel through
// the store's notifier (PostgreSQL LISTEN on a pool connection, reconnected
// with backoff; the in-process notifier of MySQL and SQLite) and wakes a
// worker on every notification; the workers keep polling meanwhile.

package outbox

import "context"

// listen wakes a worker on every notification of the outbox channel, and
// once each time the listener is (again) ready, since rows may have arrived
// while nobody listened.
func (r *Relay) listen(ctx context.Context) {
	if err := r.st.Notifier().Listen(ctx, r.t.channel, r.wake, r.wake); err != nil && ctx.Err() == nil {
		r.log.Warn("outbox relay cannot listen for notifications; polling only", "error", err)
	}
}
