// Command e2eservice is the service the end-to-end campaign (package e2e)
// starts as separate OS processes, so they can be killed with SIGKILL
// mid-batch. One binary plays every role, chosen with -role:
//
//	setup     create the campaign's tables (outbox, inbox, scheduler, saga
//	          store and the bookkeeping tables) and exit
//	producer  write business rows and outbox messages in PostgreSQL
//	          transactions, 10% of them rolled back on purpose, plus delayed
//	          messages through the scheduler
//	relay     deliver the outbox to the transport and hand due scheduled
//	          messages to the outbox
//	consumer  typed handlers behind the inbox, and a saga, on the transport
//
// Every table and topic is named after -prefix, so campaigns run side by
// side. The truth is kept in PostgreSQL: the producer records each message id
// in PREFIX_committed in the transaction that publishes it; the consumer
// records each delivery the transport hands it in PREFIX_deliveries (before
// handling) and each applied effect in PREFIX_effects (in the handler's
// transaction, next to the inbox row). The test reconciles these tables.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hexeract/hexeract/store/postgres"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters"
	"github.com/hexeract/hexeract/internal/sqlident"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/saga"
	"github.com/hexeract/hexeract/scheduler"
)

// OrderPlaced is the main business event: one per committed order.
type OrderPlaced struct {
	OrderID string `json:"order_id"`
	Amount  int    `json:"amount"`
}

// MessageType returns the wire name.
func (OrderPlaced) MessageType() string { return "e2e.order.placed" }

// OrderingKey keeps the events of one order in order.
func (o OrderPlaced) OrderingKey() string { return o.OrderID }

// Reminder is the scheduled message stream: due a little after its order.
type Reminder struct {
	OrderID string `json:"order_id"`
}

// MessageType returns the wire name.
func (Reminder) MessageType() string { return "e2e.order.reminder" }

// PaymentRequested starts the payment saga.
type PaymentRequested struct {
	OrderID string `json:"order_id"`
	Amount  int    `json:"amount"`
}

// MessageType returns the wire name.
func (PaymentRequested) MessageType() string { return "e2e.payment.requested" }

// CapturePayment is the saga's command, handled behind the inbox.
type CapturePayment struct {
	OrderID string `json:"order_id"`
	Amount  int    `json:"amount"`
}

// MessageType returns the wire name.
func (CapturePayment) MessageType() string { return "e2e.payment.capture" }

// PaymentCaptured is published through the outbox by the capture handler and
// completes the saga.
type PaymentCaptured struct {
	OrderID string `json:"order_id"`
}

// MessageType returns the wire name.
func (PaymentCaptured) MessageType() string { return "e2e.payment.captured" }

// Payment is the saga state.
type Payment struct {
	OrderID  string `json:"order_id"`
	Captured bool   `json:"captured"`
}

type flags struct {
	role, db, transport, prefix, group string
	until                              string
	count, rate, batch                 int
	rollback                           float64
}

func main() {
	var f flags
	flag.StringVar(&f.role, "role", "", "setup | producer | relay | consumer")
	flag.StringVar(&f.db, "db", os.Getenv("HEXERACT_E2E_DB"), "PostgreSQL URL (env HEXERACT_E2E_DB)")
	flag.StringVar(&f.transport, "transport", os.Getenv("HEXERACT_E2E_TRANSPORT"), "transport URL for adapters.Open (env HEXERACT_E2E_TRANSPORT)")
	flag.StringVar(&f.prefix, "prefix", "", "name prefix of tables and topics (a lower-case SQL identifier)")
	flag.StringVar(&f.group, "group", "e2e", "consumer group")
	flag.IntVar(&f.count, "count", 1000, "producer: transactions to run")
	flag.StringVar(&f.until, "until", "", "producer: after -count transactions, keep going until this file exists")
	flag.IntVar(&f.rate, "rate", 200, "producer: transactions per second (0: unlimited)")
	flag.IntVar(&f.batch, "batch", 50, "relay: batch size")
	flag.Float64Var(&f.rollback, "rollback", 0.10, "producer: share of transactions rolled back on purpose")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).
		With("role", f.role, "pid", os.Getpid())
	if err := run(f, log); err != nil {
		log.Error("e2eservice failed", "error", err)
		os.Exit(1)
	}
}

func run(f flags, log *slog.Logger) error {
	if _, err := sqlident.Parse(f.prefix + "_x"); err != nil || f.prefix == "" {
		return fmt.Errorf("-prefix %q must be a lower-case SQL identifier: %v", f.prefix, err)
	}
	if f.db == "" {
		return errors.New("-db (or HEXERACT_E2E_DB) is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	cfg, err := pgxpool.ParseConfig(f.db)
	if err != nil {
		return fmt.Errorf("-db: %w", err)
	}
	// The test cuts the consumer's connections by application_name.
	cfg.ConnConfig.RuntimeParams["application_name"] = f.prefix + "-" + f.role
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("pool: %w", err)
	}
	defer pool.Close()

	n := names(f.prefix)
	topic := func(t string) string { return f.prefix + "." + t }
	ob, err := outbox.New(postgres.New(pool), outbox.WithTable(n.outbox), outbox.WithTopicFunc(topic), outbox.WithSource("/e2e/"+f.role))
	if err != nil {
		return err
	}
	defer ob.Close()
	drv := postgres.New(pool)
	sink := scheduler.TxSink(drv, func(ctx context.Context, tx pgx.Tx, topic string, msgs ...*message.Message) error {
		return ob.PublishMessages(ctx, tx, topic, msgs...)
	})
	sched, err := scheduler.New(drv, sink, scheduler.WithTable(n.sched), scheduler.WithTopicFunc(topic),
		scheduler.WithPollInterval(500*time.Millisecond), scheduler.WithLogger(log))
	if err != nil {
		return err
	}

	switch f.role {
	case "setup":
		return setup(ctx, pool, ob, sched, n)
	case "producer":
		return produce(ctx, f, log, pool, ob, sched, n)
	case "relay":
		return relay(ctx, f, log, pool, sched, n)
	case "consumer":
		return consume(ctx, f, log, pool, ob, n, topic)
	default:
		return fmt.Errorf("-role %q: use setup, producer, relay or consumer", f.role)
	}
}

type tableNames struct {
	outbox, inbox, sched, sagas, committed, rolledback, deliveries, effects string
}

func names(prefix string) tableNames {
	return tableNames{
		outbox: prefix + "_outbox", inbox: prefix + "_inbox", sched: prefix + "_sched", sagas: prefix + "_sagas",
		committed: prefix + "_committed", rolledback: prefix + "_rolledback",
		deliveries: prefix + "_deliveries", effects: prefix + "_effects",
	}
}

func setup(ctx context.Context, pool *pgxpool.Pool, ob *outbox.Outbox[pgx.Tx], sched *scheduler.Scheduler[pgx.Tx], n tableNames) error {
	if err := ob.Migrate(ctx); err != nil {
		return err
	}
	in, err := outbox.NewInbox(postgres.New(pool), outbox.WithInboxTable(n.inbox))
	if err != nil {
		return err
	}
	if err := in.Migrate(ctx); err != nil {
		return err
	}
	if err := sched.Migrate(ctx); err != nil {
		return err
	}
	sagas, err := saga.NewSQLStore(postgres.New(pool), saga.WithTable(n.sagas))
	if err != nil {
		return err
	}
	if err := sagas.Migrate(ctx); err != nil {
		return err
	}
	_, err = pool.Exec(ctx, `
CREATE TABLE IF NOT EXISTS `+n.committed+` (msg_id text PRIMARY KEY, kind text NOT NULL, order_id text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE IF NOT EXISTS `+n.rolledback+` (msg_id text PRIMARY KEY, kind text NOT NULL);
CREATE TABLE IF NOT EXISTS `+n.deliveries+` (seq bigserial PRIMARY KEY, msg_id text NOT NULL, kind text NOT NULL, pid int NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE IF NOT EXISTS `+n.effects+` (seq bigserial PRIMARY KEY, msg_id text NOT NULL, kind text NOT NULL, order_id text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());`)
	return err
}

// produce runs f.count transactions (and more, until the file f.until
// exists, when that is set, so a test can keep traffic flowing until its
// last fault has been injected): each inserts the order's message ids
// into the committed table and writes the messages to the outbox (and, for
// one in seven, a reminder into the scheduler); f.rollback of them are
// rolled back on purpose after all the writes. A transaction that fails
// (database restarted, connection cut) is retried with a new order: whether
// its commit happened is read back from the committed table by the test.
func produce(ctx context.Context, f flags, log *slog.Logger, pool *pgxpool.Pool, ob *outbox.Outbox[pgx.Tx], sched *scheduler.Scheduler[pgx.Tx], n tableNames) error {
	var tick <-chan time.Time
	if f.rate > 0 {
		t := time.NewTicker(time.Second / time.Duration(f.rate))
		defer t.Stop()
		tick = t.C
	}
	insert := `INSERT INTO ` + n.committed + ` (msg_id, kind, order_id) SELECT unnest($1::text[]), unnest($2::text[]), $3`
	done, failed, rolled := 0, 0, 0
	for done < f.count || !exists(f.until) {
		if tick != nil {
			select {
			case <-ctx.Done():
				return nil
			case <-tick:
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		order := router.NewID()
		amount := 1 + rand.IntN(1000)
		rollback := rand.Float64() < f.rollback
		ids, kinds, err := produceOne(ctx, pool, ob, sched, insert, order, amount, done, rollback)
		if err != nil {
			failed++
			log.Warn("producer transaction failed; retrying with a new order", "error", err, "failed", failed)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if rollback {
			rolled++
			// Bookkeeping only: these ids must never be delivered.
			for {
				_, err := pool.Exec(ctx, `INSERT INTO `+n.rolledback+` (msg_id, kind) SELECT unnest($1::text[]), unnest($2::text[])`, ids, kinds)
				if err == nil || ctx.Err() != nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		done++
	}
	log.Info("producer done", "transactions", done, "rolled_back", rolled, "failed_and_retried", failed)
	return nil
}

// exists reports whether the file at path exists; an empty path exists.
func exists(path string) bool {
	if path == "" {
		return true
	}
	_, err := os.Stat(path)
	return err == nil
}

func produceOne(ctx context.Context, pool *pgxpool.Pool, ob *outbox.Outbox[pgx.Tx], sched *scheduler.Scheduler[pgx.Tx], insert, order string, amount, i int, rollback bool) (ids, kinds []string, err error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	msgs := []router.Message{OrderPlaced{OrderID: order, Amount: amount}}
	if i%5 == 0 {
		msgs = append(msgs, PaymentRequested{OrderID: order, Amount: amount})
	}
	ids, err = ob.Publish(ctx, tx, msgs...)
	if err != nil {
		return nil, nil, err
	}
	for _, m := range msgs {
		kinds = append(kinds, m.MessageType())
	}
	if i%7 == 0 {
		sid, err := sched.After(ctx, tx, time.Duration(200+rand.IntN(1300))*time.Millisecond, Reminder{OrderID: order})
		if err != nil {
			return nil, nil, err
		}
		ids = append(ids, sid...)
		kinds = append(kinds, Reminder{}.MessageType())
	}
	if _, err := tx.Exec(ctx, insert, ids, kinds, order); err != nil {
		return nil, nil, err
	}
	if rollback {
		return ids, kinds, tx.Rollback(ctx)
	}
	return ids, kinds, tx.Commit(ctx)
}

// relay runs the outbox relay and the scheduler poller until SIGTERM.
func relay(ctx context.Context, f flags, log *slog.Logger, pool *pgxpool.Pool, sched *scheduler.Scheduler[pgx.Tx], n tableNames) error {
	t, err := adapters.Open(ctx, f.transport, adapters.WithGroup(f.group), adapters.WithWatermillLogger(watermill.NewSlogLogger(log)))
	if err != nil {
		return err
	}
	defer func() { _ = t.Close() }()
	r, err := outbox.NewRelay(postgres.New(pool), t.Publisher, outbox.WithTable(n.outbox), outbox.WithBatchSize(f.batch),
		outbox.WithWorkers(2), outbox.WithPollInterval(200*time.Millisecond), outbox.WithBackoff(100*time.Millisecond, time.Second),
		outbox.WithMaxAttempts(1000), outbox.WithLease(5*time.Second), outbox.WithLogger(log))
	if err != nil {
		return err
	}
	log.Info("relay running", "transport", t.Scheme)
	errs := make(chan error, 2)
	go func() { errs <- r.Run(ctx) }()
	go func() { errs <- sched.Run(ctx) }()
	err = errors.Join(<-errs, <-errs)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// consume runs the consumer App until SIGTERM: OrderPlaced, Reminder and
// CapturePayment behind the inbox, and the payment saga.
func consume(ctx context.Context, f flags, log *slog.Logger, pool *pgxpool.Pool, ob *outbox.Outbox[pgx.Tx], n tableNames, topic router.TopicFunc) error {
	t, err := adapters.Open(ctx, f.transport, adapters.WithGroup(f.group), adapters.WithWatermillLogger(watermill.NewSlogLogger(log)))
	if err != nil {
		return err
	}
	defer func() { _ = t.Close() }()
	sub := &recordingSubscriber{Subscriber: t.Subscriber, pool: pool, log: log,
		sql: `INSERT INTO ` + n.deliveries + ` (msg_id, kind, pid) VALUES ($1, $2, $3)`}
	app, err := hexeract.New(
		hexeract.WithPublisher(t.Publisher), hexeract.WithSubscriber(sub),
		hexeract.WithTopicFunc(topic), hexeract.WithLogger(log), hexeract.WithSource("/e2e/consumer"),
		hexeract.WithDefaultMiddleware(func(c *middleware.DefaultConfig) {
			c.Retry = middleware.RetryPolicy{MaxAttempts: 8, InitialInterval: 50 * time.Millisecond, MaxInterval: time.Second}
			// Transient failures that outlast the retries (database down)
			// are nacked and redelivered, not dead-lettered.
			c.DeadLetter.ShouldDeadLetter = router.IsPermanent
			c.Timeout = 20 * time.Second
		}),
	)
	if err != nil {
		return err
	}
	in, err := outbox.NewInbox(postgres.New(pool), outbox.WithInboxTable(n.inbox), outbox.WithLogger(log), outbox.WithSignal(ob))
	if err != nil {
		return err
	}
	effect := `INSERT INTO ` + n.effects + ` (msg_id, kind, order_id) VALUES ($1, $2, $3)`
	apply := func(ctx context.Context, tx pgx.Tx, kind, order string) error {
		env, _ := router.EnvelopeFrom(ctx)
		_, err := tx.Exec(ctx, effect, env.ID, kind, order)
		return err
	}
	if err := hexeract.Handle(app, outbox.TxHandler(in, "orders", func(ctx context.Context, tx pgx.Tx, m OrderPlaced) error {
		return apply(ctx, tx, m.MessageType(), m.OrderID)
	})); err != nil {
		return err
	}
	if err := hexeract.Handle(app, outbox.TxHandler(in, "reminders", func(ctx context.Context, tx pgx.Tx, m Reminder) error {
		return apply(ctx, tx, m.MessageType(), m.OrderID)
	})); err != nil {
		return err
	}
	if err := hexeract.Handle(app, outbox.TxHandler(in, "payments", func(ctx context.Context, tx pgx.Tx, m CapturePayment) error {
		if err := apply(ctx, tx, m.MessageType(), m.OrderID); err != nil {
			return err
		}
		_, err := ob.Publish(ctx, tx, PaymentCaptured{OrderID: m.OrderID})
		return err
	})); err != nil {
		return err
	}

	drv := postgres.New(pool)
	store, err := saga.NewSQLStore(drv, saga.WithTable(n.sagas))
	if err != nil {
		return err
	}
	sagaTx := func(c *saga.Context[Payment]) (pgx.Tx, error) {
		tx, ok := saga.TxOf(c, drv)
		if !ok {
			return nil, errors.New("the saga transition has no PostgreSQL transaction")
		}
		return tx, nil
	}
	def := saga.Define[Payment]("payment")
	saga.StartedBy(def, func(e PaymentRequested) string { return e.OrderID },
		func(c *saga.Context[Payment], s *Payment, e PaymentRequested) error {
			if !c.IsNew() {
				return nil
			}
			s.OrderID = e.OrderID
			c.Send(CapturePayment{OrderID: e.OrderID, Amount: e.Amount})
			env, _ := router.EnvelopeFrom(c)
			tx, err := sagaTx(c)
			if err != nil {
				return err
			}
			_, err = tx.Exec(c, effect, env.ID, e.MessageType(), e.OrderID)
			return err
		})
	saga.Handles(def, func(e PaymentCaptured) string { return e.OrderID },
		func(c *saga.Context[Payment], s *Payment, e PaymentCaptured) error {
			if s.Captured {
				return nil
			}
			s.Captured = true
			c.Complete()
			env, _ := router.EnvelopeFrom(c)
			tx, err := sagaTx(c)
			if err != nil {
				return err
			}
			_, err = tx.Exec(c, effect, env.ID, e.MessageType(), e.OrderID)
			return err
		})
	if err := saga.Register(app, def, store, saga.WithOutbox(ob), saga.WithRetention(time.Hour),
		saga.WithUnknownInstance(saga.UnknownIgnore)); err != nil {
		return err
	}
	go func() {
		select {
		case <-app.Running():
			log.Info("consumer ready", "transport", t.Scheme)
		case <-ctx.Done():
		}
	}()
	return app.Run(ctx)
}

// recordingSubscriber records every message the transport hands out in the
// deliveries table before passing it on, so the test counts deliveries
// (duplicates included) independently of the handlers. A failed insert is
// retried until it succeeds: a delivery is never passed on unrecorded.
type recordingSubscriber struct {
	message.Subscriber
	pool *pgxpool.Pool
	log  *slog.Logger
	sql  string
}

func (s *recordingSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	in, err := s.Subscriber.Subscribe(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	pid := os.Getpid()
	go func() {
		defer close(out)
		for msg := range in {
			env := router.EnvelopeOf(msg)
			for {
				_, err := s.pool.Exec(ctx, s.sql, env.ID, env.Type, pid)
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					msg.Nack()
					return
				}
				s.log.Warn("recording delivery failed; retrying", "error", err)
				time.Sleep(100 * time.Millisecond)
			}
			select {
			case out <- msg:
			case <-ctx.Done():
				msg.Nack()
				return
			}
		}
	}()
	return out, nil
}

// SubscribeInitialize passes through to the transport when it supports it.
func (s *recordingSubscriber) SubscribeInitialize(topic string) error {
	if si, ok := s.Subscriber.(message.SubscribeInitializer); ok {
		return si.SubscribeInitialize(topic)
	}
	return nil
}
