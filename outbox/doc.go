// Package outbox is Hexeract's transactional outbox and inbox, on any
// storage driver of package store: PostgreSQL (store/postgres, pgx.Tx),
// MySQL/MariaDB (store/mysql, *sql.Tx) and SQLite (store/sqlite, *sql.Tx).
// [Outbox], [Inbox] and [TxHandler] are generic over the driver's
// transaction type; the [Relay] needs only a store.Store. The SQL is the
// driver's (store.OutboxExecutor, store.InboxExecutor).
//
// # Outbox
//
// [Outbox.Publish] writes messages into an outbox table inside the
// transaction that changes the business state, so the state change and the
// messages commit together or not at all:
//
//	ob, _ := outbox.New(postgres.New(pool)) // an Outbox[pgx.Tx]
//	tx, _ := pool.Begin(ctx)
//	_, _ = tx.Exec(ctx, `INSERT INTO users (id, email) VALUES ($1, $2)`, id, email)
//	ids, _ := ob.Publish(ctx, tx, UserRegistered{UserID: id, Email: email})
//	_ = tx.Commit(ctx)
//
// A [Relay] (build it with [Outbox.NewRelay], so that [Outbox.Signal] wakes
// it in-process; run it with hexeract.WithWorker or on its own) claims pending
// rows in batches (FOR UPDATE SKIP LOCKED on PostgreSQL and MySQL, a lease
// on MySQL and SQLite), publishes them to any Watermill publisher and
// deletes them once the publisher returned. [Outbox.Signal] wakes the
// relays at once (on PostgreSQL through a notification that reaches other
// processes); they also poll. Several relays may run on one table; no row is in flight in two of
// them at once. Delivery is at-least-once: pair it with the [Inbox] on the
// consuming side for an exactly-once effect.
//
// Failed publishes are retried with exponential backoff; after
// [WithMaxAttempts] failures a row moves to the dead table (name_dead),
// where it stays until [Outbox.ReplayDead] or [Outbox.PurgeDead] (or the
// "hexeract outbox dead" CLI commands). Messages with an ordering key
// (router.Keyed, metadata ce_partitionkey) are delivered in commit order
// per key, even with several relays; messages with different keys, or no
// key, proceed in parallel. A failing row holds back only the later rows
// of its own key.
//
// # Inbox
//
// [Inbox.Middleware], [TxHandler] and [Inbox.Process] run a handler's
// database work and the insert of (consumer, message id) into the inbox
// table in one transaction, so a redelivered message has its effect once.
//
// # Schema
//
// Tables are created by the driver's versioned migrations, applied by
// [Migrate], [Outbox.Migrate], [Inbox.Migrate] or "hexeract migrate up". Table names are validated (lower-case letters, digits and
// underscores; optionally schema-qualified) before any SQL is built.
//
// # Tracing
//
// [Outbox.Publish] and [Outbox.PublishMessages] start an OpenTelemetry
// producer span "create <topic>" per message and store its context in the
// row (traceparent metadata); the relay's batch span "publish <topic>" links
// to those contexts. [WithTracerProvider] sets the provider of both.
//
// See docs/outbox.md for the design and its trade-offs, and
// docs/observability.md for every span and metric.
package outbox
