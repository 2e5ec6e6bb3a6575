// Package scheduler delivers messages later: durable delayed messages in a
// database (any storage driver: PostgreSQL, MySQL/MariaDB or embedded
// SQLite, see package store), cron schedules that fire once per tick across all replicas, and
// redelivery middleware that retries a failing message after increasing
// delays before dead-lettering it.
//
// # Drivers
//
// A Scheduler is built on a store.Driver[TTx] and is generic over its
// transaction type: scheduler.New(postgres.New(pool), sink) gives a
// *Scheduler[pgx.Tx], scheduler.New(sqliteDriver, sink) a
// *Scheduler[*sql.Tx], and code holding only a store.Store uses
// scheduler.New(store.Untyped(st), sink). Only the driver holds SQL: on
// PostgreSQL the claim is FOR UPDATE SKIP LOCKED and wake-ups are
// LISTEN/NOTIFY across processes; on MySQL/MariaDB the claim is FOR UPDATE
// SKIP LOCKED and wake-ups reach the pollers of the same driver value, other
// processes' messages being found by polling; on SQLite the claim runs in
// the IMMEDIATE hand-off transaction (DELETE ... RETURNING), which holds
// the database's one write lock, and times are INTEGER Unix microseconds.
//
// # Delayed messages
//
// [Scheduler.Schedule] (and [Scheduler.After]) writes messages into the
// scheduler table through the caller's transaction (a TTx), like the
// outbox: they exist only if the transaction commits. [Scheduler.Cancel],
// [Scheduler.CancelTx] and [Scheduler.Reschedule] change a pending message
// by the id Schedule returned. The ...With variants
// ([Scheduler.ScheduleMessagesWith], [Scheduler.CancelWith]) take a
// store.Executor instead, for other components (a saga's timeouts) that
// hold the transaction untyped.
//
// [Scheduler.Run] is the poller (it satisfies hexeract.Worker). It claims due
// rows with FOR UPDATE SKIP LOCKED, in batches, and in the same transaction
// hands them to a [Sink] and deletes them. With the transactional outbox as
// sink (the outbox's PublishMessagesWith) the hand-off is atomic: a crash
// before the commit leaves the messages scheduled, a crash after it leaves
// them in the outbox, whose relay publishes them; a due message is never lost
// and never handed off twice. [PublisherSink] publishes straight to a
// Watermill publisher instead, at-least-once (a crash between the publish and
// the commit publishes again).
//
// The wake-up is precise: the poller sleeps until the earliest due time it
// knows (read with the claim, on the database clock), and an announcement by
// Schedule and Reschedule (on PostgreSQL a NOTIFY sent on commit, carrying
// the due time) wakes it when a message is due earlier than that. The poll
// interval ([WithPollInterval]) is the fallback when notifications are lost,
// and on MySQL/MariaDB and SQLite it bounds how late a message scheduled by
// another process is seen. Any number of pollers,
// in one process or many, may share a table.
//
// # Cron
//
// [Scheduler.Cron] registers a job on github.com/go-co-op/gocron/v2 with a
// seconds-precision spec ("*/5 * * * * *"), in the scheduler's location
// ([WithLocation]) or the spec's own ("CRON_TZ=Europe/Paris 0 0 9 * * *").
// Each tick fires once across all replicas: a gocron Elector backed by a
// lease row (expiry on the database clock, renewed by its holder, so it
// survives the loss of the holder's connection)
// picks one replica to fire, and the tick is recorded in a fired-ticks table
// keyed by (job, tick) in the transaction that hands the tick's messages to
// the sink, so a tick can never be handed off twice, even by two replicas
// that both believe they hold the lease. When the holder dies, another
// replica takes the lease within the lease TTL ([WithLeaseTTL]).
//
// # Redelivery
//
// [Scheduler.Redelivery] is Watermill handler middleware. Placed inside
// middleware.DeadLetter and outside middleware.Retry, it catches a message
// whose immediate retries are exhausted, records the failure in the
// message's fault history ([router.KeyRedeliveryHistory]), and schedules it again after
// the next delay (default 10 s, 1 min, 5 min) in the scheduler table, so the
// delays survive restarts. After the last delay it returns the error and the
// dead-letter middleware moves the message aside with the whole history.
//
// # Tables
//
// [WithTable] names the scheduled-messages table (default
// "hexeract_scheduled"); the tables name_ticks and name_leases sit beside
// it. [Scheduler.Migrate] or "hexeract migrate up" creates them with the
// driver's migrations; constructors never touch the database and Run does
// not migrate (on a missing table it returns an error saying so). The
// command "hexeract scheduler list|cancel" inspects and cancels pending
// messages on any driver.
//
// # Tracing
//
// Each scheduled message gets a producer span "create <topic>", a child of
// the scheduling step's span, whose context is stored with the message, so
// its consumers continue that trace after the delay ([WithTracerProvider]).
package scheduler
