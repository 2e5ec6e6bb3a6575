// Package pgnotify holds a PostgreSQL LISTEN connection for a component that
// polls a table and wants to be woken early by NOTIFY: the outbox relay and
// the scheduler use it.
//
// A [Listener] holds one dedicated connection, LISTENs on one or more
// channels, and calls a callback for every notification. When the
// connection is lost (server restart, pg_terminate_backend, network) it logs
// a warning, reconnects with exponential backoff, and, once LISTENing again,
// calls the on-listen callback so that the caller looks for what was
// committed while nobody listened. While it is disconnected no notification
// arrives: callers must keep polling their table at their poll interval,
// which bounds how late they see new rows. The listener stops, closing its
// connection, when the context given to [Listener.Run] is cancelled.
//
// The package knows PostgreSQL and pgx only, no outbox or scheduler type, so
// it can move under a PostgreSQL storage driver as is.
package pgnotify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Connect opens the connection a [Listener] holds. The listener owns the
// returned connection and closes it.
type Connect func(ctx context.Context) (*pgx.Conn, error)

// ConnectConfig returns a Connect that opens a new connection with cfg (the
// connection counts against max_connections, not against any pool).
func ConnectConfig(cfg *pgx.ConnConfig) Connect {
	return func(ctx context.Context) (*pgx.Conn, error) { return pgx.ConnectConfig(ctx, cfg) }
}

// ConnectPool returns a Connect that takes a connection from pool and
// hijacks it: a connection in LISTEN state is never given back to the pool,
// which opens another one in its place when it needs it.
func ConnectPool(pool *pgxpool.Pool) Connect {
	return func(ctx context.Context) (*pgx.Conn, error) {
		c, err := pool.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		return c.Hijack(), nil
	}
}

// Listener keeps one connection LISTENing on its channels and calls its
// callback for every notification. Build it with [New]; run it with
// [Listener.Run]. A Listener may be run by one goroutine at a time.
type Listener struct {
	connect    Connect
	channels   []string
	notify     func(*pgconn.Notification)
	onListen   func()
	log        *slog.Logger
	minBackoff time.Duration
	maxBackoff time.Duration
}

// Option configures a [Listener].
type Option func(*Listener)

// WithLogger sets the logger for connection losses and recoveries (default
// slog.Default()). Give it the caller's attributes (table, component).
func WithLogger(l *slog.Logger) Option { return func(ln *Listener) { ln.log = l } }

// WithBackoff sets the reconnect backoff: the first retry waits min, each
// failed attempt doubles the wait up to max. It restarts at min once a
// connection LISTENed. Default 100 ms to 5 s.
func WithBackoff(min, max time.Duration) Option {
	return func(ln *Listener) { ln.minBackoff, ln.maxBackoff = min, max }
}

// WithOnListen sets a function called each time the LISTEN statements have
// succeeded (on the first connection and after every reconnection), before
// any notification of that connection is delivered. Notifications sent while
// the listener was disconnected are lost: use it to look at the table once.
func WithOnListen(f func()) Option { return func(ln *Listener) { ln.onListen = f } }

// New returns a listener that LISTENs on channels through connections from
// connect and calls notify, from the goroutine running [Listener.Run], for
// every notification. notify should return quickly (signal a channel): the
// next notification is read only after it returned. Channel names are quoted
// as identifiers, so they are case-sensitive and must be at most 63 bytes.
func New(connect Connect, channels []string, notify func(*pgconn.Notification), opts ...Option) (*Listener, error) {
	l := &Listener{
		connect: connect, channels: append([]string(nil), channels...), notify: notify,
		onListen: func() {}, log: slog.Default(),
		minBackoff: 100 * time.Millisecond, maxBackoff: 5 * time.Second,
	}
	for _, opt := range opts {
		if opt != nil {
			opt(l)
		}
	}
	switch {
	case connect == nil:
		return nil, errors.New("pgnotify: New needs a Connect")
	case notify == nil:
		return nil, errors.New("pgnotify: New needs a notify callback")
	case len(l.channels) == 0:
		return nil, errors.New("pgnotify: New needs at least one channel")
	case l.minBackoff <= 0 || l.maxBackoff < l.minBackoff:
		return nil, fmt.Errorf("pgnotify: backoff min %v / max %v: need 0 < min <= max", l.minBackoff, l.maxBackoff)
	case l.onListen == nil || l.log == nil:
		return nil, errors.New("pgnotify: nil WithOnListen function or WithLogger logger")
	}
	for _, ch := range l.channels {
		if ch == "" || len(ch) > 63 {
			return nil, fmt.Errorf("pgnotify: channel %q: need 1 to 63 bytes", ch)
		}
	}
	return l, nil
}

// Run holds the LISTEN connection until ctx is cancelled, reconnecting with
// backoff after every loss, then closes the connection and returns. It
// starts no goroutine.
func (l *Listener) Run(ctx context.Context) {
	backoff := l.minBackoff
	down := false // a failure was logged and no connection LISTENed since
	for {
		listened, err := l.session(ctx, down)
		if ctx.Err() != nil {
			return
		}
		if listened {
			backoff = l.minBackoff
		}
		what := "pgnotify: LISTEN connection lost; the caller keeps polling until it is back"
		if !listened {
			what = "pgnotify: cannot LISTEN; the caller keeps polling until it can"
		}
		l.log.Warn(what, "channels", l.channels, "error", err, "retry_in", backoff)
		down = true
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, l.maxBackoff)
	}
}

// session connects, LISTENs and delivers notifications until the connection
// fails or ctx is cancelled. It reports whether the LISTEN statements
// succeeded.
func (l *Listener) session(ctx context.Context, recovering bool) (bool, error) {
	conn, err := l.connect(ctx)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = conn.Close(cctx)
		cancel()
	}()
	for _, ch := range l.channels {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return false, fmt.Errorf("listen %q: %w", ch, err)
		}
	}
	if recovering {
		l.log.Info("pgnotify: LISTEN connection restored", "channels", l.channels)
	}
	l.onListen()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, err
		}
		l.notify(n)
	}
}
