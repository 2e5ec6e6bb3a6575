package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/internal/sqlident"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/store"
)

// Inbox makes consumers idempotent: it records (consumer, message id) in
// an inbox table inside the transaction that applies the message's effect
// (INSERT ... ON CONFLICT DO NOTHING on PostgreSQL and SQLite, INSERT
// IGNORE on MySQL). A redelivered message finds its row and is
// acknowledged without running the effect again; two concurrent deliveries
// of the same message serialise on the primary key, and the second sees
// the first's row once it commits (or claims the message if the first
// rolls back). There is no check-then-act window.
type Inbox[TTx any] struct {
	drv       store.Driver[TTx]
	name      sqlident.Name
	t         store.InboxTable
	retention time.Duration
	log       *slog.Logger
	signal    []Signaler
}

// NewInbox returns an Inbox on drv and the table set by [WithInboxTable]
// (default [DefaultInboxTable]). It validates the name before any SQL is
// built and does not touch the database; create the table with
// [Inbox.Migrate].
func NewInbox[TTx any](drv store.Driver[TTx], opts ...InboxOption) (*Inbox[TTx], error) {
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
	if drv == nil {
		return nil, errors.New("outbox: NewInbox needs a store driver")
	}
	if drv.Dialect() == store.SQLite && n.Schema != "" {
		return nil, fmt.Errorf("outbox: inbox table %q: SQLite has no schemas; pass a table name without a dot to WithInboxTable", cfg.table)
	}
	if cfg.retention <= 0 {
		return nil, fmt.Errorf("outbox: inbox retention %v must be positive", cfg.retention)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	return &Inbox[TTx]{drv: drv, name: n, t: store.InboxTable{Schema: n.Schema, Table: n.Table},
		retention: cfg.retention, log: cfg.logger, signal: cfg.signal}, nil
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
func (i *Inbox[TTx]) Table() string { return i.name.String() }

// Migrate creates or upgrades the inbox table (versioned, under the
// driver's migration lock, safe to call concurrently).
func (i *Inbox[TTx]) Migrate(ctx context.Context) error {
	return migrateComponent(ctx, i.drv, i.t.Component(), func(ex store.Executor) ([]store.Migration, error) {
		return ex.InboxMigrations(i.t)
	})
}

// SchemaStatus reports which migrations of the inbox table are applied.
func (i *Inbox[TTx]) SchemaStatus(ctx context.Context) ([]SchemaStatus, error) {
	return schemaStatus(ctx, i.drv, i.t.Component(), func(ex store.Executor) ([]store.Migration, error) {
		return ex.InboxMigrations(i.t)
	})
}

// Claim records that consumer handles messageID, through tx. It returns
// true when this is the first time (run the effect in the same tx), false
// when the message was already handled by consumer (skip the effect). If
// another transaction is claiming the same pair, Claim waits for it.
func (i *Inbox[TTx]) Claim(ctx context.Context, tx TTx, consumer, messageID string) (bool, error) {
	return i.ClaimWith(ctx, i.drv.UnwrapTx(tx), consumer, messageID)
}

// ClaimWith is [Inbox.Claim] through an executor of the inbox's store.
func (i *Inbox[TTx]) ClaimWith(ctx context.Context, ex store.Executor, consumer, messageID string) (bool, error) {
	if consumer == "" || messageID == "" {
		return false, errors.New("outbox: inbox claim needs a consumer name and a message id")
	}
	first, err := ex.InboxClaim(ctx, i.t, consumer, messageID)
	if err != nil {
		return false, fmt.Errorf("outbox: inbox %s: claim %s for %s: %w", i.name, messageID, consumer, err)
	}
	return first, nil
}

// Process runs fn and the inbox claim of (consumer, messageID) in one
// transaction. When the message was already handled it returns (false,
// nil) without calling fn. When fn returns an error, nothing commits (the
// claim neither) and the error is returned, so the message can be retried.
// ctx passed to fn carries the transaction ([Tx]), for nested helpers.
func (i *Inbox[TTx]) Process(ctx context.Context, consumer, messageID string, fn func(ctx context.Context, tx TTx) error) (ran bool, err error) {
	ex, err := i.drv.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("outbox: inbox begin: %w", err)
	}
	defer func() { _ = ex.Rollback(context.WithoutCancel(ctx)) }()
	tx, ok := i.drv.TxOf(ex)
	if !ok {
		return false, errors.New("outbox: inbox: the store's driver does not recognise its own transaction")
	}
	first, err := i.ClaimWith(ctx, ex, consumer, messageID)
	if err != nil || !first {
		return false, err
	}
	if err := fn(WithTx(ctx, ex), tx); err != nil {
		return false, err
	}
	if err := ex.Commit(ctx); err != nil {
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
func (i *Inbox[TTx]) Middleware(consumer string) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			id := router.EnvelopeOf(msg).ID
			var produced []*message.Message
			orig := msg.Context()
			ran, err := i.Process(orig, consumer, id, func(ctx context.Context, _ TTx) error {
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
func TxHandler[TTx any, T router.Message](i *Inbox[TTx], consumer string, h func(ctx context.Context, tx TTx, msg T) error) router.Handler[T] {
	return router.HandlerFunc[T](func(ctx context.Context, msg T) error {
		env, ok := router.EnvelopeFrom(ctx)
		if !ok {
			return router.Permanent(errors.New("outbox: inbox TxHandler called outside a message handler (no envelope in ctx)"))
		}
		_, err := i.Process(ctx, consumer, env.ID, func(ctx context.Context, tx TTx) error { return h(ctx, tx, msg) })
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
func (i *Inbox[TTx]) Run(ctx context.Context) error {
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
func (i *Inbox[TTx]) Cleanup(ctx context.Context) (int64, error) {
	var total int64
	ex := i.drv.Executor()
	for {
		n, err := ex.InboxCleanup(ctx, i.t, i.retention, cleanupBatch)
		if err != nil {
			return total, fmt.Errorf("outbox: inbox %s cleanup: %w", i.name, err)
		}
		total += n
		if n < cleanupBatch {
			return total, nil
		}
	}
}

type txKey struct{}

// WithTx returns a context carrying the transaction ex, as the inbox
// middleware does.
func WithTx(ctx context.Context, ex store.ExecutorTx) context.Context {
	return context.WithValue(ctx, txKey{}, ex)
}

// Tx returns the transaction the inbox middleware (or [Inbox.Process])
// opened for the message being handled; ok is false outside one. The
// driver's TxOf turns it into its own transaction type (pgx.Tx, *sql.Tx).
func Tx(ctx context.Context) (ex store.ExecutorTx, ok bool) {
	ex, ok = ctx.Value(txKey{}).(store.ExecutorTx)
	return ex, ok
}

// Tx returns the driver transaction (pgx.Tx, *sql.Tx) that the inbox
// middleware (or [Inbox.Process]) opened for the message being handled;
// ok is false outside one, or when it belongs to another store.
func (i *Inbox[TTx]) Tx(ctx context.Context) (tx TTx, ok bool) {
	ex, ok := Tx(ctx)
	if !ok {
		return tx, false
	}
	return i.drv.TxOf(ex)
}
