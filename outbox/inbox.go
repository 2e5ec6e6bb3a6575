package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hexeract/hexeract/internal/migrate"
	"github.com/hexeract/hexeract/internal/sqlident"
	"github.com/hexeract/hexeract/router"
)

// Inbox makes consumers idempotent: it records (consumer, message id) in
// an inbox table inside the transaction that applies the message's effect,
// with INSERT ... ON CONFLICT DO NOTHING. A redelivered message finds its
// row and is acknowledged without running the effect again; two concurrent
// deliveries of the same message serialise on the primary key, and the
// second sees the first's row once it commits (or claims the message if the
// first rolls back). There is no check-then-act window.
type Inbox struct {
	pool      *pgxpool.Pool
	name      sqlident.Name
	table     string
	retention time.Duration
	log       *slog.Logger
	signal    []*Outbox
	claimSQL  string
}

// NewInbox returns an Inbox on the table set by [WithInboxTable] (default
// [DefaultInboxTable]). It validates the name before any SQL is built and
// does not touch the database; create the table with [Inbox.Migrate].
func NewInbox(pool *pgxpool.Pool, opts ...InboxOption) (*Inbox, error) {
	cfg := inboxConfig{table: DefaultInboxTable, retention: 7 * 24 * time.Hour}
	for _, opt := range opts {
		if opt != nil {
			opt.applyInbox(&cfg)
		}
	}
	if err := CheckInboxTable(cfg.table); err != nil {
		return nil, err
	}
	n := sqlident.MustParse(cfg.table)
	if pool == nil {
		return nil, errors.New("outbox: NewInbox needs a *pgxpool.Pool")
	}
	if cfg.retention <= 0 {
		return nil, fmt.Errorf("outbox: inbox retention %v must be positive", cfg.retention)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	i := &Inbox{pool: pool, name: n, table: n.Quoted(), retention: cfg.retention, log: cfg.logger, signal: cfg.signal}
	i.claimSQL = `INSERT INTO ` + i.table + ` (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`
	return i, nil
}

// CheckInboxTable reports whether name is usable as an inbox table name
// (see [WithInboxTable]), without touching a database.
func CheckInboxTable(name string) error {
	n, err := sqlident.Parse(name)
	if err != nil {
		return fmt.Errorf("outbox: inbox table: %w; pass a name like \"hexeract_inbox\" or \"app.inbox\" to WithInboxTable", err)
	}
	if _, err := indexName(n, "_recv_at"); err != nil {
		return fmt.Errorf("outbox: inbox %w; pass a shorter name to WithInboxTable", err)
	}
	return nil
}

// Table returns the inbox table name as configured.
func (i *Inbox) Table() string { return i.name.String() }

func (i *Inbox) component() string { return "inbox:" + i.name.String() }

func (i *Inbox) migrations() ([]migrate.Migration, error) {
	idx, err := indexName(i.name, "_recv_at")
	if err != nil {
		return nil, fmt.Errorf("outbox: inbox %w", err)
	}
	schema := ""
	if i.name.Schema != "" {
		schema = `"` + i.name.Schema + `"`
	}
	return loadMigrations("inbox_", map[string]string{"Table": i.table, "Schema": schema, "ReceivedAtIndex": idx})
}

// Migrate creates or upgrades the inbox table (versioned, under an
// advisory lock, safe to call concurrently).
func (i *Inbox) Migrate(ctx context.Context) error {
	ms, err := i.migrations()
	if err != nil {
		return err
	}
	if _, err := migrate.Apply(ctx, i.pool, i.component(), ms); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// SchemaStatus reports which migrations of the inbox table are applied.
func (i *Inbox) SchemaStatus(ctx context.Context) ([]SchemaStatus, error) {
	ms, err := i.migrations()
	if err != nil {
		return nil, err
	}
	st, err := migrate.Statuses(ctx, i.pool, i.component(), ms)
	if err != nil {
		return nil, fmt.Errorf("outbox: inbox schema status: %w", err)
	}
	return toStatuses(st), nil
}

// Claim records that consumer handles messageID, through tx. It returns
// true when this is the first time (run the effect in the same tx), false
// when the message was already handled by consumer (skip the effect). If
// another transaction is claiming the same pair, Claim waits for it.
func (i *Inbox) Claim(ctx context.Context, tx Executor, consumer, messageID string) (bool, error) {
	if consumer == "" || messageID == "" {
		return false, errors.New("outbox: inbox claim needs a consumer name and a message id")
	}
	tag, err := tx.Exec(ctx, i.claimSQL, consumer, messageID)
	if err != nil {
		return false, fmt.Errorf("outbox: inbox %s: claim %s for %s: %w", i.name, messageID, consumer, err)
	}
	return tag.RowsAffected() == 1, nil
}

// Process runs fn and the inbox claim of (consumer, messageID) in one
// transaction. When the message was already handled it returns (false,
// nil) without calling fn. When fn returns an error, nothing commits (the
// claim neither) and the error is returned, so the message can be retried.
// ctx passed to fn carries the transaction ([Tx]), for nested helpers.
func (i *Inbox) Process(ctx context.Context, consumer, messageID string, fn func(ctx context.Context, tx pgx.Tx) error) (ran bool, err error) {
	tx, err := i.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("outbox: inbox begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	first, err := i.Claim(ctx, tx, consumer, messageID)
	if err != nil || !first {
		return false, err
	}
	if err := fn(WithTx(ctx, tx), tx); err != nil {
		return false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("outbox: inbox commit of %s for %s: %w", messageID, consumer, err)
	}
	for _, o := range i.signal {
		o.Signal()
	}
	return true, nil
}

// Middleware returns Watermill middleware that runs each message's handler
// in a transaction together with the inbox claim for consumer (use the
// handler's name). The message id is the envelope's ce_id (the Watermill
// UUID when missing). The handler gets the transaction through [Tx] on its
// message's context (a typed handler's ctx): write business rows with it
// and publish follow-up messages with [Outbox.Publish] on it, so state,
// inbox row and outgoing messages commit together. A duplicate is
// acknowledged without calling the handler. Messages the handler returns
// are not transactional, and can be lost: the router publishes them after
// the transaction committed, and if that publish fails, the redelivered
// message is skipped as a duplicate, so they are never published. Publish
// follow-up messages through the outbox instead.
func (i *Inbox) Middleware(consumer string) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			id := router.EnvelopeOf(msg).ID
			var produced []*message.Message
			orig := msg.Context()
			ran, err := i.Process(orig, consumer, id, func(ctx context.Context, _ pgx.Tx) error {
				msg.SetContext(ctx)
				defer msg.SetContext(orig)
				var err error
				produced, err = h(msg)
				return err
			})
			if err != nil {
				return nil, err
			}
			if !ran {
				i.log.Debug("inbox: duplicate message skipped", "consumer", consumer, "message_id", id)
			}
			return produced, nil
		}
	}
}

// TxHandler returns a typed handler that runs h and the inbox claim of the
// incoming message for consumer in one transaction; a duplicate is skipped
// (h is not called) and acknowledged. Register it with hexeract.Handle.
func TxHandler[T router.Message](i *Inbox, consumer string, h func(ctx context.Context, tx pgx.Tx, msg T) error) router.Handler[T] {
	return router.HandlerFunc[T](func(ctx context.Context, msg T) error {
		env, ok := router.EnvelopeFrom(ctx)
		if !ok {
			return router.Permanent(errors.New("outbox: inbox TxHandler called outside a message handler (no envelope in ctx)"))
		}
		_, err := i.Process(ctx, consumer, env.ID, func(ctx context.Context, tx pgx.Tx) error { return h(ctx, tx, msg) })
		return err
	})
}

// Run deletes expired inbox rows (see [Inbox.Cleanup]) at once and then
// every tenth of the retention (at least every second, at most every
// minute) until ctx is cancelled, when it returns nil. A failed cleanup is
// logged and tried again at the next tick. An Inbox is therefore a
// hexeract.Worker: pass it to hexeract.WithWorker and App.Run keeps the
// table trimmed. Several instances may run at once (rows are claimed with
// SKIP LOCKED).
func (i *Inbox) Run(ctx context.Context) error {
	every := min(max(i.retention/10, time.Second), time.Minute)
	for {
		if n, err := i.Cleanup(ctx); err != nil && ctx.Err() == nil {
			i.log.Warn("inbox retention cleanup failed", "inbox", i.name.String(), "error", err)
		} else if n > 0 {
			i.log.Debug("inbox retention cleanup", "inbox", i.name.String(), "deleted", n)
		}
		if !sleep(ctx, every) {
			return nil
		}
	}
}

// Cleanup deletes inbox rows older than the inbox retention
// ([WithInboxRetention], default 7 days) in batches and returns how many
// it deleted. [Inbox.Run] calls it periodically.
func (i *Inbox) Cleanup(ctx context.Context) (int64, error) {
	sql := `DELETE FROM ` + i.table + ` x USING (SELECT consumer, message_id FROM ` + i.table +
		` WHERE received_at < now() - make_interval(secs => $1) LIMIT $2 FOR UPDATE SKIP LOCKED) s
WHERE x.consumer = s.consumer AND x.message_id = s.message_id`
	var total int64
	for {
		tag, err := i.pool.Exec(ctx, sql, i.retention.Seconds(), cleanupBatch)
		if err != nil {
			return total, fmt.Errorf("outbox: inbox %s cleanup: %w", i.name, err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < cleanupBatch {
			return total, nil
		}
	}
}

type txKey struct{}

// WithTx returns a context carrying tx, as the inbox middleware does.
func WithTx(ctx context.Context, tx pgx.Tx) context.Context {
	return context.WithValue(ctx, txKey{}, tx)
}

// Tx returns the transaction the inbox middleware (or [Inbox.Process])
// opened for the message being handled; ok is false outside one.
func Tx(ctx context.Context) (tx pgx.Tx, ok bool) {
	tx, ok = ctx.Value(txKey{}).(pgx.Tx)
	return tx, ok
}
