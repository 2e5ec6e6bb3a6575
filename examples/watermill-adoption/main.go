// Command watermill-adoption is an existing Watermill service that adopts
// Hexeract step by step (docs/watermill.md), on a plain message.Router with
// Watermill's own transports (watermill-nats with AutoProvision, or
// watermill-amqp), Watermill's Retry and Recoverer and raw handlers:
//
//  1. Hexeract's middleware on the router (correlation, tracing, dead
//     letters counting the calls Watermill's Retry made);
//  2. a typed handler beside the raw ones, fed by a raw producer that
//     writes no CloudEvents envelope (router.AssumeType);
//  3. the service's own transports and topic names, given once (a
//     router.TopicNaming without dots, as watermill-nats AutoProvision needs);
//  4. the outbox on the service's pgx pool, relaying to the same transport;
//  5. from the forwarder to the outbox (cut-over, see docs/watermill.md);
//  6. from Watermill's CQRS event bus to a typed handler.
//
// It needs PostgreSQL and NATS JetStream or RabbitMQ:
//
//	go run ./examples/watermill-adoption -transport nats
//	go run ./examples/watermill-adoption -transport amqp
//	go run ./examples/watermill-adoption -transport nats -app   # as a hexeract.App
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	wnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/message"
	wmmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	nc "github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"

	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/store/postgres"
)

// OrderPlaced is what the legacy order service publishes, as plain JSON
// with no envelope; Hexeract's typed handler takes it as "orders.placed".
type OrderPlaced struct {
	OrderID string `json:"order_id"`
	Total   int    `json:"total"`
}

// MessageType is the wire name.
func (OrderPlaced) MessageType() string { return "orders.placed" }

// InvoiceRequested is written to the outbox by the typed handler.
type InvoiceRequested struct {
	OrderID string `json:"order_id"`
	Amount  int    `json:"amount"`
}

// MessageType is the wire name.
func (InvoiceRequested) MessageType() string { return "billing.invoice_requested" }

// OrderShipped is published with Watermill's CQRS event bus (step 6).
type OrderShipped struct {
	OrderID string `json:"order_id"`
}

// MessageType is the wire name.
func (OrderShipped) MessageType() string { return "orders.shipped" }

// Topics names every topic of the service, once: Hexeract's dot-free naming
// (watermill-nats with AutoProvision names a JetStream stream after each
// topic, and stream names cannot hold dots) behind a per-run prefix.
type Topics struct {
	Prefix string
	router.UnderscoreTopics
}

// Topic returns the prefixed, dot-free topic of a wire name.
func (t Topics) Topic(wireName string) string { return t.Prefix + t.UnderscoreTopics.Topic(wireName) }

// Config configures one run.
type Config struct {
	Transport   string // "nats" or "amqp"
	NATSURL     string
	AMQPURL     string
	PostgresURL string
	Prefix      string // topic and table prefix (letters, digits, '_')
	Orders      int    // orders the legacy producer publishes, poison ones included
	Shipments   int    // events the CQRS event bus publishes
	Logger      *slog.Logger
	// TracerProvider traces the run (Hexeract's middleware, the outbox and
	// its relay); nil means otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
}

// Report is what a run observed.
type Report struct {
	// Calls per order id of the typed handler, per invoice of the raw
	// "invoicing" handler, per issued invoice of the raw "ledger" handler
	// and per shipment of the typed CQRS replacement.
	OrderCalls, InvoiceCalls, LedgerCalls, ShipmentCalls map[string]int
	// OrderTraces, InvoiceTraces and LedgerTraces are, per order id, the
	// trace the typed handler, the raw "invoicing" handler and the raw
	// "ledger" handler ran in: one flow, one trace.
	OrderTraces, InvoiceTraces, LedgerTraces map[string]trace.TraceID
	// DeadLetters are the faults of the dead letters of the orders topic.
	DeadLetters map[string]middleware.Fault
	// Topics the run used (for cleanup).
	Topics []string
	// Tables the run created (for cleanup): the outbox's and the service's,
	// and the forwarder's (quoted).
	Tables, ForwarderTables []string
	// Forwarded is how many orders went through the forwarder before the
	// cut-over to the outbox; ForwarderDrained is true once the forwarder
	// had acked all of them and was stopped.
	Forwarded        int
	ForwarderDrained bool
}

// poison tells the orders that fail for good: a negative total is refused
// by the typed handler, a total of 13 makes it panic.
func poison(i int) (total int, bad bool) {
	switch i {
	case 3:
		return -1, true
	case 7:
		return 13, true
	}
	return 100 + i, false
}

func main() {
	cfg := Config{Orders: 20, Shipments: 5, Prefix: "adoption_", Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	flag.StringVar(&cfg.Transport, "transport", "nats", "nats or amqp")
	flag.StringVar(&cfg.NATSURL, "nats", envOr("HEXERACT_TEST_NATS", "nats://127.0.0.1:4222"), "NATS URL")
	flag.StringVar(&cfg.AMQPURL, "amqp", envOr("HEXERACT_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/"), "RabbitMQ URL")
	flag.StringVar(&cfg.PostgresURL, "postgres", envOr("HEXERACT_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"), "PostgreSQL URL")
	asApp := flag.Bool("app", false, "run the service as a hexeract.App (after the last step)")
	flag.Parse()
	runner := run
	if *asApp {
		runner = runApp
	}
	rep, err := runner(context.Background(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("orders handled: %d, invoices: %d, ledger entries: %d, shipments: %d, dead letters: %d\n",
		len(rep.OrderCalls), len(rep.InvoiceCalls), len(rep.LedgerCalls), len(rep.ShipmentCalls), len(rep.DeadLetters))
	for id, f := range rep.DeadLetters {
		fmt.Printf("dead letter %s: %d handler calls, %s\n", id, f.Attempts, f.Error)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// transport opens the service's Watermill publisher and subscriber, as the
// service had them before Hexeract (step 3: your transports).
func transport(cfg Config, logger watermill.LoggerAdapter) (message.Publisher, message.Subscriber, error) {
	switch cfg.Transport {
	case "nats":
		group := cfg.Prefix + "service"
		js := wnats.JetStreamConfig{
			AutoProvision: true,
			DurablePrefix: group,
			// ManualAck: without it nats.go acks every message the
			// callback returns from, also one dropped on shutdown.
			SubscribeOptions: []nc.SubOpt{nc.DeliverAll(), nc.AckExplicit(), nc.ManualAck()},
		}
		pub, err := wnats.NewPublisher(wnats.PublisherConfig{URL: cfg.NATSURL, JetStream: js}, logger)
		if err != nil {
			return nil, nil, err
		}
		sub, err := wnats.NewSubscriber(wnats.SubscriberConfig{
			URL: cfg.NATSURL, QueueGroupPrefix: group, SubscribersCount: 1,
			CloseTimeout: 10 * time.Second, AckWaitTimeout: 30 * time.Second, JetStream: js,
		}, logger)
		if err != nil {
			_ = pub.Close()
			return nil, nil, err
		}
		return pub, sub, nil
	case "amqp":
		amqpCfg := wamqp.NewDurablePubSubConfig(cfg.AMQPURL, wamqp.GenerateQueueNameTopicNameWithSuffix("service"))
		pub, err := wamqp.NewPublisher(amqpCfg, logger)
		if err != nil {
			return nil, nil, err
		}
		sub, err := wamqp.NewSubscriber(amqpCfg, logger)
		if err != nil {
			_ = pub.Close()
			return nil, nil, err
		}
		return pub, sub, nil
	}
	return nil, nil, fmt.Errorf("unknown transport %q; use nats or amqp", cfg.Transport)
}

// counter counts handler calls per id, and keeps the trace of the first.
type counter struct {
	mu     sync.Mutex
	n      map[string]int
	traces map[string]trace.TraceID
}

func (c *counter) add(id string) {
	c.mu.Lock()
	c.n[id]++
	c.mu.Unlock()
}

// addIn counts a call made in ctx and records ctx's trace.
func (c *counter) addIn(ctx context.Context, id string) {
	c.mu.Lock()
	c.n[id]++
	if c.traces == nil {
		c.traces = map[string]trace.TraceID{}
	}
	if _, ok := c.traces[id]; !ok {
		c.traces[id] = trace.SpanContextFromContext(ctx).TraceID()
	}
	c.mu.Unlock()
}

func (c *counter) traceSnapshot() map[string]trace.TraceID {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]trace.TraceID, len(c.traces))
	for k, v := range c.traces {
		out[k] = v
	}
	return out
}

func (c *counter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

func run(ctx context.Context, cfg Config) (rep Report, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	wmLogger := watermill.NewSlogLogger(cfg.Logger)
	topics := Topics{Prefix: cfg.Prefix} // the one place topics are named
	ordersTopic := topics.Topic(OrderPlaced{}.MessageType())
	invoicesTopic := topics.Topic(InvoiceRequested{}.MessageType())
	issuedTopic := topics.Topic("billing.invoice_issued")
	shippedTopic := topics.Topic(OrderShipped{}.MessageType())
	rep.Topics = []string{ordersTopic, invoicesTopic, issuedTopic, shippedTopic,
		topics.DeadLetterTopic(ordersTopic), topics.DeadLetterTopic(invoicesTopic),
		topics.DeadLetterTopic(issuedTopic), topics.DeadLetterTopic(shippedTopic)}

	pub, sub, err := transport(cfg, wmLogger)
	if err != nil {
		return rep, err
	}
	defer func() { err = errors.Join(err, sub.Close(), pub.Close()) }()

	// Step 4: the service's own pgx pool, for its tables and the outbox.
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
	table := outbox.WithTable(outboxTable)                  // given once, to the outbox and its relay
	traced := outbox.WithTracerProvider(cfg.TracerProvider) // nil: the global provider
	ob, err := outbox.New(postgres.New(pool), table, outbox.WithTopicNaming(topics), outbox.WithSource("/orders"), traced)
	if err != nil {
		return rep, err
	}
	defer ob.Close()
	if err := ob.Migrate(ctx); err != nil {
		return rep, err
	}
	relay, err := outbox.NewRelay(postgres.New(pool), pub, table, outbox.WithPollInterval(100*time.Millisecond), outbox.WithLogger(cfg.Logger), traced)
	if err != nil {
		return rep, err
	}

	r, err := message.NewRouter(message.RouterConfig{CloseTimeout: 15 * time.Second}, wmLogger)
	if err != nil {
		return rep, err
	}

	// Step 1: Hexeract's middleware, outermost. Dead letters go through the
	// decorated publisher, on the topics' naming; their topics are created
	// up front (SubscribeInitialize) so nothing is dropped.
	tracing := middleware.TracingOptions{TracerProvider: cfg.TracerProvider}
	hexPub := middleware.TracingPublisher(middleware.CorrelationPublisher(pub), tracing)
	dlOpts := middleware.DeadLetterOptions{Topic: topics.DeadLetterTopic, Logger: cfg.Logger}
	if si, ok := sub.(message.SubscribeInitializer); ok {
		dlOpts.Initialize = si.SubscribeInitialize
	}
	deadLetter, err := middleware.DeadLetter(hexPub, dlOpts)
	if err != nil {
		return rep, err
	}
	r.AddMiddleware(middleware.Correlation, middleware.Tracing(tracing), deadLetter)
	// The service's existing Watermill middleware, as it was.
	r.AddMiddleware(
		wmmiddleware.Retry{MaxRetries: 2, InitialInterval: 10 * time.Millisecond, Logger: wmLogger}.Middleware,
		wmmiddleware.Recoverer,
	)
	// Innermost: dead letters count the handler calls Watermill's Retry made.
	r.AddMiddleware(middleware.CountCalls)

	c := newCounters()
	orders, invoices, ledger, shipments := c.orders, c.invoices, c.ledger, c.shipments

	// Step 2: a typed handler beside the raw ones. The legacy producer
	// writes plain JSON; AssumeType gives it the envelope of OrderPlaced
	// (type from the topic, id from the Watermill UUID).
	placed, err := router.NewHandlerFunc(router.HandlerFunc[OrderPlaced](func(ctx context.Context, o OrderPlaced) error {
		orders.addIn(ctx, o.OrderID)
		switch {
		case o.Total < 0:
			return fmt.Errorf("order %s: negative total %d", o.OrderID, o.Total)
		case o.Total == 13:
			panic("unlucky total")
		}
		// The order row and the event commit together (outbox).
		return ob.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO `+ordersTable+` (id, total) VALUES ($1, $2) ON CONFLICT DO NOTHING`, o.OrderID, o.Total); err != nil {
				return err
			}
			_, err := ob.Publish(ctx, tx, InvoiceRequested{OrderID: o.OrderID, Amount: o.Total})
			return err
		})
	}), nil)
	if err != nil {
		return rep, err
	}
	r.AddConsumerHandler("orders-placed", ordersTopic, sub, placed).
		AddMiddleware(router.AssumeType(OrderPlaced{}.MessageType()))

	// The service's raw handlers: one that publishes what it returns (the
	// Correlation step stamps correlation and causation on it), one that
	// publishes nothing.
	r.AddHandler("invoicing", invoicesTopic, sub, issuedTopic, hexPub, func(msg *message.Message) ([]*message.Message, error) {
		var inv InvoiceRequested
		if err := json.Unmarshal(msg.Payload, &inv); err != nil {
			return nil, err
		}
		invoices.addIn(msg.Context(), inv.OrderID)
		out := message.NewMessage(watermill.NewUUID(), []byte(inv.OrderID))
		return []*message.Message{out}, nil
	})
	r.AddConsumerHandler("ledger", issuedTopic, sub, func(msg *message.Message) error {
		ledger.addIn(msg.Context(), string(msg.Payload))
		return nil
	})

	// Step 6: events of Watermill's CQRS event bus, handled by a typed
	// handler instead of a cqrs.EventProcessor.
	shipped, err := router.NewHandlerFunc(router.HandlerFunc[OrderShipped](func(_ context.Context, s OrderShipped) error {
		shipments.add(s.OrderID)
		return nil
	}), nil)
	if err != nil {
		return rep, err
	}
	r.AddConsumerHandler("orders-shipped", shippedTopic, sub, shipped).
		AddMiddleware(router.AssumeType(OrderShipped{}.MessageType()))

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); errs <- r.Run(runCtx) }()
	go func() { defer wg.Done(); errs <- relay.Run(runCtx) }()
	defer func() {
		stop()
		err = errors.Join(err, r.Close())
		wg.Wait()
		close(errs)
		for e := range errs {
			if e != nil && !errors.Is(e, context.Canceled) {
				err = errors.Join(err, e)
			}
		}
	}()
	select {
	case <-r.Running():
	case <-time.After(30 * time.Second):
		return rep, errors.New("router did not start")
	}

	// Subscribe to the dead-letter topic of the orders (to report them).
	dlqCtx, stopDLQ := context.WithCancel(ctx)
	defer stopDLQ()
	dlq, err := sub.Subscribe(dlqCtx, topics.DeadLetterTopic(ordersTopic))
	if err != nil {
		return rep, err
	}
	rep.DeadLetters = map[string]middleware.Fault{}

	// Step 5: the service wrote its orders through Watermill's forwarder
	// (a watermill-sql table in the producer's transaction); it now writes
	// them into Hexeract's outbox. Both run during the cut-over; the
	// forwarder is stopped once its table is drained.
	fwd, err := startForwarder(runCtx, pool, cfg.Prefix+"forwarder", pub, wmLogger)
	if err != nil {
		return rep, err
	}
	rep.ForwarderTables = fwd.tables()
	fwdOpen := true
	defer func() {
		if fwdOpen {
			err = errors.Join(err, fwd.Close())
		}
	}()

	drv := &driver{cfg: cfg, pub: pub, pool: pool, ob: ob, fwd: fwd, logger: wmLogger, rep: &rep, dlq: dlq,
		ordersTopic: ordersTopic, shippedTopic: shippedTopic, counters: counters{orders, invoices, ledger, shipments}}
	if err := drv.produce(ctx); err != nil {
		return rep, err
	}
	// Cut-over done: once the forwarder has forwarded what was written
	// before it, stop it.
	if err := fwd.waitDrained(ctx, 30*time.Second); err != nil {
		return rep, err
	}
	fwdOpen = false
	if err := fwd.Close(); err != nil {
		return rep, err
	}
	rep.ForwarderDrained = true
	return rep, drv.wait(ctx)
}

// counters are the handler call counts of a run.
type counters struct{ orders, invoices, ledger, shipments *counter }

func newCounters() counters {
	return counters{&counter{n: map[string]int{}}, &counter{n: map[string]int{}}, &counter{n: map[string]int{}}, &counter{n: map[string]int{}}}
}

// driver plays the service's producers and waits for the outcome.
type driver struct {
	cfg                       Config
	pub                       message.Publisher
	pool                      *pgxpool.Pool
	ob                        *outbox.Outbox[pgx.Tx]
	fwd                       *legacyForwarder // nil: no forwarder (the App variant)
	logger                    watermill.LoggerAdapter
	rep                       *Report
	dlq                       <-chan *message.Message
	ordersTopic, shippedTopic string
	counters
	want, bad int
}

// produce publishes the orders like the legacy producer (plain JSON, a
// Watermill UUID, no envelope): a third straight to the transport, a third
// through the forwarder (when there is one), the rest (after the cut-over)
// through the outbox; then the shipments through Watermill's CQRS event bus.
func (d *driver) produce(ctx context.Context) error {
	third := d.cfg.Orders / 3
	for i := 0; i < d.cfg.Orders; i++ {
		total, isBad := poison(i)
		body, _ := json.Marshal(OrderPlaced{OrderID: fmt.Sprintf("o-%03d", i), Total: total})
		msg := message.NewMessage(watermill.NewUUID(), body)
		var err error
		switch {
		case i < third:
			err = d.pub.Publish(d.ordersTopic, msg)
		case i < 2*third && d.fwd != nil:
			err = pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error { return d.fwd.publishInTx(tx, d.ordersTopic, msg) })
			d.rep.Forwarded++
		default:
			err = d.ob.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error { return d.ob.PublishMessages(ctx, tx, d.ordersTopic, msg) })
		}
		if err != nil {
			return err
		}
		if isBad {
			d.bad++
		} else {
			d.want++
		}
	}
	// Watermill's CQRS event bus, as the service used it.
	bus, err := cqrs.NewEventBusWithConfig(d.pub, cqrs.EventBusConfig{
		GeneratePublishTopic: func(cqrs.GenerateEventPublishTopicParams) (string, error) { return d.shippedTopic, nil },
		Marshaler:            cqrs.JSONMarshaler{},
		Logger:               d.logger,
	})
	if err != nil {
		return err
	}
	for i := 0; i < d.cfg.Shipments; i++ {
		if err := bus.Publish(ctx, OrderShipped{OrderID: fmt.Sprintf("s-%03d", i)}); err != nil {
			return err
		}
	}
	return nil
}

// wait waits until every good order was invoiced and entered in the
// ledger, every shipment handled and every poison order dead-lettered,
// then fills the report.
func (d *driver) wait(ctx context.Context) error {
	deadline := time.After(60 * time.Second)
	done := func() bool {
		return len(d.invoices.snapshot()) >= d.want && len(d.ledger.snapshot()) >= d.want &&
			len(d.shipments.snapshot()) >= d.cfg.Shipments && len(d.rep.DeadLetters) >= d.bad
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !done() {
		select {
		case m := <-d.dlq:
			m.Ack()
			f, _ := middleware.FaultOf(m.Metadata)
			var o OrderPlaced
			_ = json.Unmarshal(m.Payload, &o)
			d.rep.DeadLetters[o.OrderID] = f
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("timed out: %d/%d invoices, %d/%d ledger entries, %d/%d shipments, %d/%d dead letters",
				len(d.invoices.snapshot()), d.want, len(d.ledger.snapshot()), d.want, len(d.shipments.snapshot()), d.cfg.Shipments, len(d.rep.DeadLetters), d.bad)
		}
	}
	// Let late duplicates show up before counting.
	time.Sleep(300 * time.Millisecond)
	d.rep.OrderCalls, d.rep.InvoiceCalls, d.rep.LedgerCalls, d.rep.ShipmentCalls = d.orders.snapshot(), d.invoices.snapshot(), d.ledger.snapshot(), d.shipments.snapshot()
	d.rep.OrderTraces, d.rep.InvoiceTraces, d.rep.LedgerTraces = d.orders.traceSnapshot(), d.invoices.traceSnapshot(), d.ledger.traceSnapshot()
	return nil
}
