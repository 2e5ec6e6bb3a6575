package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	wmmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/store/postgres"
)

// runApp is the same service after the last step: a hexeract.App on the
// service's own Watermill transports. The topic naming is given once, to
// the App; the outbox takes it from app.Topics(). Watermill's Retry and
// Recoverer are added with app.Use (inside the App's default chain, whose
// own retry is turned off); the raw handlers are registered through the App.
func runApp(ctx context.Context, cfg Config) (rep Report, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	wmLogger := watermill.NewSlogLogger(cfg.Logger)
	pub, sub, err := transport(cfg, wmLogger)
	if err != nil {
		return rep, err
	}
	defer func() { err = errors.Join(err, sub.Close(), pub.Close()) }()
	pool, err := pgxpool.New(ctx, cfg.PostgresURL)
	if err != nil {
		return rep, err
	}
	defer pool.Close()
	ordersTable, outboxTable := cfg.Prefix+"orders", cfg.Prefix+"outbox"
	rep.Tables = []string{ordersTable, outboxTable}
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+ordersTable+` (id text PRIMARY KEY, total int NOT NULL)`); err != nil {
		return rep, fmt.Errorf("PostgreSQL: %w", err)
	}
	table := outbox.WithTable(outboxTable)
	traced := outbox.WithTracerProvider(cfg.TracerProvider) // nil: the global provider
	relay, err := outbox.NewRelay(postgres.New(pool), pub, table, outbox.WithPollInterval(100*time.Millisecond), outbox.WithLogger(cfg.Logger), traced)
	if err != nil {
		return rep, err
	}

	app, err := hexeract.New(
		hexeract.WithPubSub(pub, sub),
		hexeract.WithTopicNaming(Topics{Prefix: cfg.Prefix}), // the one place
		hexeract.WithLogger(cfg.Logger),
		hexeract.WithWorker(relay),
		hexeract.WithDefaultMiddleware(func(c *middleware.DefaultConfig) {
			c.Retry.MaxAttempts = 1 // Watermill's Retry, added with Use, retries
			c.Tracing.TracerProvider = cfg.TracerProvider
		}),
	)
	if err != nil {
		return rep, err
	}
	defer func() { err = errors.Join(err, app.Close()) }()
	app.Use(
		wmmiddleware.Retry{MaxRetries: 2, InitialInterval: 10 * time.Millisecond, Logger: wmLogger}.Middleware,
		wmmiddleware.Recoverer,
	)
	topics := app.Topics()
	ordersTopic := topics.Topic(OrderPlaced{}.MessageType())
	invoicesTopic := topics.Topic(InvoiceRequested{}.MessageType())
	issuedTopic := topics.Topic("billing.invoice_issued")
	shippedTopic := topics.Topic(OrderShipped{}.MessageType())
	for _, t := range []string{ordersTopic, invoicesTopic, issuedTopic, shippedTopic} {
		rep.Topics = append(rep.Topics, t, topics.DeadLetterTopic(t))
	}

	ob, err := outbox.New(postgres.New(pool), table, outbox.WithTopicNaming(app.Topics()), outbox.WithSource("/orders"), traced)
	if err != nil {
		return rep, err
	}
	defer ob.Close()
	if err := ob.Migrate(ctx); err != nil {
		return rep, err
	}

	c := newCounters()
	// Typed handlers that accept the raw producer's messages.
	err = hexeract.HandleFunc(app, func(ctx context.Context, o OrderPlaced) error {
		c.orders.addIn(ctx, o.OrderID)
		switch {
		case o.Total < 0:
			return fmt.Errorf("order %s: negative total %d", o.OrderID, o.Total)
		case o.Total == 13:
			panic("unlucky total")
		}
		return ob.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO `+ordersTable+` (id, total) VALUES ($1, $2) ON CONFLICT DO NOTHING`, o.OrderID, o.Total); err != nil {
				return err
			}
			_, err := ob.Publish(ctx, tx, InvoiceRequested{OrderID: o.OrderID, Amount: o.Total})
			return err
		})
	}, hexeract.WithAcceptRaw())
	if err != nil {
		return rep, err
	}
	err = hexeract.HandleFunc(app, func(_ context.Context, s OrderShipped) error {
		c.shipments.add(s.OrderID)
		return nil
	}, hexeract.WithAcceptRaw())
	if err != nil {
		return rep, err
	}
	// The raw handlers, registered through the App.
	err = app.AddPublisherHandler("invoicing", invoicesTopic, issuedTopic, func(msg *message.Message) ([]*message.Message, error) {
		var inv InvoiceRequested
		if err := json.Unmarshal(msg.Payload, &inv); err != nil {
			return nil, err
		}
		c.invoices.addIn(msg.Context(), inv.OrderID)
		return []*message.Message{message.NewMessage(watermill.NewUUID(), []byte(inv.OrderID))}, nil
	})
	if err != nil {
		return rep, err
	}
	if err := app.AddHandler("ledger", issuedTopic, func(msg *message.Message) error {
		c.ledger.addIn(msg.Context(), string(msg.Payload))
		return nil
	}); err != nil {
		return rep, err
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runErr := make(chan error, 1)
	go func() { runErr <- app.Run(runCtx) }()
	defer func() {
		stop()
		if e := <-runErr; e != nil {
			err = errors.Join(err, e)
		}
	}()
	select {
	case <-app.Running():
	case e := <-runErr:
		runErr <- e
		return rep, fmt.Errorf("App.Run: %w", e)
	case <-time.After(30 * time.Second):
		return rep, errors.New("the App did not start")
	}
	dlqCtx, stopDLQ := context.WithCancel(ctx)
	defer stopDLQ()
	dlq, err := sub.Subscribe(dlqCtx, topics.DeadLetterTopic(ordersTopic))
	if err != nil {
		return rep, err
	}
	rep.DeadLetters = map[string]middleware.Fault{}
	drv := &driver{cfg: cfg, pub: pub, pool: pool, ob: ob, logger: wmLogger, rep: &rep, dlq: dlq,
		ordersTopic: ordersTopic, shippedTopic: shippedTopic, counters: c}
	if err := drv.produce(ctx); err != nil {
		return rep, err
	}
	return rep, drv.wait(ctx)
}
