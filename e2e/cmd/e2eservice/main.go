// Command e2eservice is the service the end-to-end campaign (package e2e)
// starts as separate OS processes, so they can be killed with SIGKILL
// mid-batch. One binary plays every role, chosen with -role:
//
//	setup     create the campaign's tables (outbox, inbox, scheduler, saga
//	          store and the bookkeeping tables) and exit
//	producer  write business rows and outbox messages in database
//	          transactions, 10% of them rolled back on purpose, plus delayed
//	          messages through the scheduler
//	relay     deliver the outbox to the transport and hand due scheduled
//	          messages to the outbox
//	consumer  typed handlers behind the inbox, and a saga, on the transport
//
// Every table and topic is named after -prefix, so campaigns run side by
// side. The database is any store URL (-db postgres://, mysql:// or
// sqlite:///path.db); the service runs on the driver its scheme names, with
// that driver's typed transaction (run is generic over it). The truth is kept
// in the database: the producer records each message id
// in PREFIX_committed in the transaction that publishes it; the consumer
// records each delivery the transport hands it in PREFIX_deliveries (before
// handling) and each applied effect in PREFIX_effects (in the handler's
// transaction, next to the inbox row). The test reconciles these tables.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

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
	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/mysql"
	"github.com/hexeract/hexeract/store/postgres"
	"github.com/hexeract/hexeract/store/sqlite"
	"github.com/hexeract/hexeract/store/storeurl"
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
	flag.StringVar(&f.db, "db", os.Getenv("HEXERACT_E2E_DB"), "store URL: postgres://, mysql:// or sqlite:///path.db (env HEXERACT_E2E_DB)")
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
	if err := open(f, log); err != nil {
		log.Error("e2eservice failed", "error", err)
		os.Exit(1)
	}
}

// open opens the store -db names with its driver and runs the role on it,
// with the driver's own transaction type.
func open(f flags, log *slog.Logger) error {
	if _, err := sqlident.Parse(f.prefix + "_x"); err != nil || f.prefix == "" {
		return fmt.Errorf("-prefix %q must be a lower-case SQL identifier: %v", f.prefix, err)
	}
	if f.db == "" {
		return errors.New("-db (or HEXERACT_E2E_DB) is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	switch dialect := storeurl.Dialect(f.db); dialect {
	case store.Postgres:
		cfg, err := pgxpool.ParseConfig(f.db)
		if err != nil {
			return fmt.Errorf("-db %s: %s", store.RedactURL(f.db), store.RedactText(err.Error(), f.db))
		}
		// The test cuts the consumer's connections by application_name.
		cfg.ConnConfig.RuntimeParams["application_name"] = f.prefix + "-" + f.role
		cfg.MaxConns = 8
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			return fmt.Errorf("pool: %w", err)
		}
		defer pool.Close()
		return run(ctx, f, log, postgres.New(pool), sqlDB[pgx.Tx]{
			dialect: dialect,
			exec: func(ctx context.Context, query string, args ...any) error {
				_, err := pool.Exec(ctx, query, args...)
				return err
			},
			execTx: func(ctx context.Context, tx pgx.Tx, query string, args ...any) error {
				_, err := tx.Exec(ctx, query, args...)
				return err
			},
		})
	case store.MySQL:
		drv, err := mysql.Open(ctx, f.db, mysql.WithLogger(log))
		if err != nil {
			return err
		}
		defer func() { _ = drv.Close() }()
		drv.DB().SetMaxOpenConns(8)
		return run(ctx, f, log, drv, stdSQL(dialect, drv.DB()))
	case store.SQLite:
		drv, err := sqlite.Open(ctx, f.db, sqlite.WithLogger(log))
		if err != nil {
			return err
		}
		defer func() { _ = drv.Close() }()
		drv.DB().SetMaxOpenConns(8)
		return run(ctx, f, log, drv, stdSQL(dialect, drv.DB()))
	}
	return fmt.Errorf("-db %s: use postgres://, mysql:// or sqlite:///path.db", store.RedactURL(f.db))
}

// sqlDB runs the service's own SQL (the business and bookkeeping tables)
// on one driver: on its pool, or in a transaction of its type TTx. Queries
// are written with ? placeholders; q rewrites them for the dialect.
type sqlDB[TTx any] struct {
	dialect store.Dialect
	exec    func(ctx context.Context, query string, args ...any) error
	execTx  func(ctx context.Context, tx TTx, query string, args ...any) error
}

// stdSQL is the sqlDB of a database/sql driver (MySQL, SQLite).
func stdSQL(dialect store.Dialect, db *sql.DB) sqlDB[*sql.Tx] {
	return sqlDB[*sql.Tx]{
		dialect: dialect,
		exec: func(ctx context.Context, query string, args ...any) error {
			_, err := db.ExecContext(ctx, query, args...)
			return err
		},
		execTx: func(ctx context.Context, tx *sql.Tx, query string, args ...any) error {
			_, err := tx.ExecContext(ctx, query, args...)
			return err
		},
	}
}

// q returns query with its ? placeholders as the dialect wants them ($1,
// $2 ... on PostgreSQL). The service's queries hold no ? in literals.
func (d sqlDB[TTx]) q(query string) string {
	if d.dialect != store.Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// insertRows returns an INSERT of rows rows of the columns into table,
// ignoring rows whose key exists when ignore is set.
func (d sqlDB[TTx]) insertRows(table string, columns []string, rows int, ignore bool) string {
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(columns)), ", ") + ")"
	values := strings.TrimSuffix(strings.Repeat(one+", ", rows), ", ")
	verb, tail := "INSERT INTO ", ""
	if ignore {
		if d.dialect == store.MySQL {
			verb = "INSERT IGNORE INTO "
		} else {
			tail = " ON CONFLICT DO NOTHING"
		}
	}
	return d.q(verb + table + " (" + strings.Join(columns, ", ") + ") VALUES " + values + tail)
}

// ddl returns the bookkeeping tables' DDL for the dialect, one statement
// each. The at columns are the database's clock: timestamptz on PostgreSQL,
// DATETIME(6) on MySQL, epoch milliseconds (REAL) on SQLite.
func (d sqlDB[TTx]) ddl(n tableNames) []string {
	switch d.dialect {
	case store.MySQL:
		const opts = ` ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`
		return []string{
			`CREATE TABLE IF NOT EXISTS ` + n.committed + ` (msg_id VARCHAR(64) PRIMARY KEY, kind VARCHAR(64) NOT NULL, order_id VARCHAR(64) NOT NULL, at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))` + opts,
			`CREATE TABLE IF NOT EXISTS ` + n.rolledback + ` (msg_id VARCHAR(64) PRIMARY KEY, kind VARCHAR(64) NOT NULL)` + opts,
			`CREATE TABLE IF NOT EXISTS ` + n.deliveries + ` (seq BIGINT AUTO_INCREMENT PRIMARY KEY, msg_id VARCHAR(64) NOT NULL, kind VARCHAR(64) NOT NULL, pid INT NOT NULL, at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), KEY (msg_id))` + opts,
			`CREATE TABLE IF NOT EXISTS ` + n.effects + ` (seq BIGINT AUTO_INCREMENT PRIMARY KEY, msg_id VARCHAR(64) NOT NULL, kind VARCHAR(64) NOT NULL, order_id VARCHAR(64) NOT NULL, at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), KEY (msg_id))` + opts,
		}
	case store.SQLite:
		const now = `((julianday('now') - 2440587.5) * 86400000.0)`
		return []string{
			`CREATE TABLE IF NOT EXISTS ` + n.committed + ` (msg_id TEXT PRIMARY KEY, kind TEXT NOT NULL, order_id TEXT NOT NULL, at REAL NOT NULL DEFAULT ` + now + `)`,
			`CREATE TABLE IF NOT EXISTS ` + n.rolledback + ` (msg_id TEXT PRIMARY KEY, kind TEXT NOT NULL)`,
			`CREATE TABLE IF NOT EXISTS ` + n.deliveries + ` (seq INTEGER PRIMARY KEY AUTOINCREMENT, msg_id TEXT NOT NULL, kind TEXT NOT NULL, pid INTEGER NOT NULL, at REAL NOT NULL DEFAULT ` + now + `)`,
			`CREATE INDEX IF NOT EXISTS ` + n.deliveries + `_msg ON ` + n.deliveries + ` (msg_id)`,
			`CREATE TABLE IF NOT EXISTS ` + n.effects + ` (seq INTEGER PRIMARY KEY AUTOINCREMENT, msg_id TEXT NOT NULL, kind TEXT NOT NULL, order_id TEXT NOT NULL, at REAL NOT NULL DEFAULT ` + now + `)`,
			`CREATE INDEX IF NOT EXISTS ` + n.effects + `_msg ON ` + n.effects + ` (msg_id)`,
		}
	}
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + n.committed + ` (msg_id text PRIMARY KEY, kind text NOT NULL, order_id text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`,
		`CREATE TABLE IF NOT EXISTS ` + n.rolledback + ` (msg_id text PRIMARY KEY, kind text NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS ` + n.deliveries + ` (seq bigserial PRIMARY KEY, msg_id text NOT NULL, kind text NOT NULL, pid int NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`,
		`CREATE TABLE IF NOT EXISTS ` + n.effects + ` (seq bigserial PRIMARY KEY, msg_id text NOT NULL, kind text NOT NULL, order_id text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`,
	}
}

// service is one role's view of the store: the driver, the service's own
// SQL, the outbox and the scheduler.
type service[TTx any] struct {
	f     flags
	log   *slog.Logger
	drv   store.Driver[TTx]
	db    sqlDB[TTx]
	ob    *outbox.Outbox[TTx]
	sched *scheduler.Scheduler[TTx]
	n     tableNames
	topic router.TopicFunc
}

// run plays f.role on drv, whose transactions are TTx.
func run[TTx any](ctx context.Context, f flags, log *slog.Logger, drv store.Driver[TTx], db sqlDB[TTx]) error {
	n := names(f.prefix)
	topic := func(t string) string { return f.prefix + "." + t }
	ob, err := outbox.New(drv, outbox.WithTable(n.outbox), outbox.WithTopicFunc(topic), outbox.WithSource("/e2e/"+f.role))
	if err != nil {
		return err
	}
	defer ob.Close()
	sched, err := scheduler.New(drv, ob, scheduler.WithTable(n.sched), scheduler.WithTopicFunc(topic),
		scheduler.WithPollInterval(500*time.Millisecond), scheduler.WithLogger(log))
	if err != nil {
		return err
	}
	s := &service[TTx]{f: f, log: log, drv: drv, db: db, ob: ob, sched: sched, n: n, topic: topic}
	switch f.role {
	case "setup":
		return s.setup(ctx)
	case "producer":
		return s.produce(ctx)
	case "relay":
		return s.relay(ctx)
	case "consumer":
		return s.consume(ctx)
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

func (s *service[TTx]) setup(ctx context.Context) error {
	if err := s.ob.Migrate(ctx); err != nil {
		return err
	}
	in, err := outbox.NewInbox(s.drv, outbox.WithInboxTable(s.n.inbox))
	if err != nil {
		return err
	}
	if err := in.Migrate(ctx); err != nil {
		return err
	}
	if err := s.sched.Migrate(ctx); err != nil {
		return err
	}
	sagas, err := saga.NewSQLStore(s.drv, saga.WithTable(s.n.sagas))
	if err != nil {
		return err
	}
	if err := sagas.Migrate(ctx); err != nil {
		return err
	}
	for _, stmt := range s.db.ddl(s.n) {
		if err := s.db.exec(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}

// errRollback rolls a producer transaction back on purpose.
var errRollback = errors.New("rolled back on purpose")

// produce runs f.count transactions (and more, until the file f.until
// exists, when that is set, so a test can keep traffic flowing until its
// last fault has been injected): each inserts the order's message ids
// into the committed table and writes the messages to the outbox (and, for
// one in seven, a reminder into the scheduler); f.rollback of them are
// rolled back on purpose after all the writes. A transaction that fails
// (database restarted, connection cut) is retried with a new order: whether
// its commit happened is read back from the committed table by the test.
func (s *service[TTx]) produce(ctx context.Context) error {
	f := s.f
	var tick <-chan time.Time
	if f.rate > 0 {
		t := time.NewTicker(time.Second / time.Duration(f.rate))
		defer t.Stop()
		tick = t.C
	}
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
		ids, kinds, err := s.produceOne(ctx, order, amount, done, rollback)
		if err != nil {
			failed++
			s.log.Warn("producer transaction failed; retrying with a new order", "error", err, "failed", failed)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if rollback {
			rolled++
			// Bookkeeping only: these ids must never be delivered.
			args := make([]any, 0, 2*len(ids))
			for i := range ids {
				args = append(args, ids[i], kinds[i])
			}
			insert := s.db.insertRows(s.n.rolledback, []string{"msg_id", "kind"}, len(ids), true)
			for {
				err := s.db.exec(ctx, insert, args...)
				if err == nil || ctx.Err() != nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		done++
	}
	s.log.Info("producer done", "transactions", done, "rolled_back", rolled, "failed_and_retried", failed)
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

func (s *service[TTx]) produceOne(ctx context.Context, order string, amount, i int, rollback bool) (ids, kinds []string, err error) {
	err = s.drv.InTx(ctx, func(ctx context.Context, tx TTx) error {
		msgs := []router.Message{OrderPlaced{OrderID: order, Amount: amount}}
		if i%5 == 0 {
			msgs = append(msgs, PaymentRequested{OrderID: order, Amount: amount})
		}
		var err error
		ids, err = s.ob.Publish(ctx, tx, msgs...)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			kinds = append(kinds, m.MessageType())
		}
		if i%7 == 0 {
			sid, err := s.sched.After(ctx, tx, time.Duration(200+rand.IntN(1300))*time.Millisecond, Reminder{OrderID: order})
			if err != nil {
				return err
			}
			ids = append(ids, sid...)
			kinds = append(kinds, Reminder{}.MessageType())
		}
		args := make([]any, 0, 3*len(ids))
		for i := range ids {
			args = append(args, ids[i], kinds[i], order)
		}
		if err := s.db.execTx(ctx, tx, s.db.insertRows(s.n.committed, []string{"msg_id", "kind", "order_id"}, len(ids), false), args...); err != nil {
			return err
		}
		if rollback {
			return errRollback
		}
		return nil
	})
	if rollback && errors.Is(err, errRollback) {
		err = nil
	}
	return ids, kinds, err
}

// relay runs the outbox relay and the scheduler poller until SIGTERM.
func (s *service[TTx]) relay(ctx context.Context) error {
	f, log := s.f, s.log
	t, err := adapters.Open(ctx, f.transport, adapters.WithGroup(f.group), adapters.WithWatermillLogger(watermill.NewSlogLogger(log)))
	if err != nil {
		return err
	}
	defer func() { _ = t.Close() }()
	r, err := outbox.NewRelay(s.drv, t.Publisher, outbox.WithTable(s.n.outbox), outbox.WithBatchSize(f.batch),
		outbox.WithWorkers(2), outbox.WithPollInterval(200*time.Millisecond), outbox.WithBackoff(100*time.Millisecond, time.Second),
		outbox.WithMaxAttempts(1000), outbox.WithLease(5*time.Second), outbox.WithLogger(log))
	if err != nil {
		return err
	}
	log.Info("relay running", "transport", t.Scheme, "store", s.db.dialect)
	errs := make(chan error, 2)
	go func() { errs <- r.Run(ctx) }()
	go func() { errs <- s.sched.Run(ctx) }()
	err = errors.Join(<-errs, <-errs)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// consume runs the consumer App until SIGTERM: OrderPlaced, Reminder and
// CapturePayment behind the inbox, and the payment saga.
func (s *service[TTx]) consume(ctx context.Context) error {
	f, log, ob, n := s.f, s.log, s.ob, s.n
	t, err := adapters.Open(ctx, f.transport, adapters.WithGroup(f.group), adapters.WithWatermillLogger(watermill.NewSlogLogger(log)))
	if err != nil {
		return err
	}
	defer func() { _ = t.Close() }()
	sub := &recordingSubscriber{Subscriber: t.Subscriber, exec: s.db.exec, log: log,
		sql: s.db.q(`INSERT INTO ` + n.deliveries + ` (msg_id, kind, pid) VALUES (?, ?, ?)`)}
	app, err := hexeract.New(
		hexeract.WithPublisher(t.Publisher), hexeract.WithSubscriber(sub),
		hexeract.WithTopicFunc(s.topic), hexeract.WithLogger(log), hexeract.WithSource("/e2e/consumer"),
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
	in, err := outbox.NewInbox(s.drv, outbox.WithInboxTable(n.inbox), outbox.WithLogger(log), outbox.WithSignal(ob))
	if err != nil {
		return err
	}
	effect := s.db.q(`INSERT INTO ` + n.effects + ` (msg_id, kind, order_id) VALUES (?, ?, ?)`)
	apply := func(ctx context.Context, tx TTx, kind, order string) error {
		env, _ := router.EnvelopeFrom(ctx)
		return s.db.execTx(ctx, tx, effect, env.ID, kind, order)
	}
	if err := hexeract.Handle(app, outbox.TxHandler(in, "orders", func(ctx context.Context, tx TTx, m OrderPlaced) error {
		return apply(ctx, tx, m.MessageType(), m.OrderID)
	})); err != nil {
		return err
	}
	if err := hexeract.Handle(app, outbox.TxHandler(in, "reminders", func(ctx context.Context, tx TTx, m Reminder) error {
		return apply(ctx, tx, m.MessageType(), m.OrderID)
	})); err != nil {
		return err
	}
	if err := hexeract.Handle(app, outbox.TxHandler(in, "payments", func(ctx context.Context, tx TTx, m CapturePayment) error {
		if err := apply(ctx, tx, m.MessageType(), m.OrderID); err != nil {
			return err
		}
		_, err := ob.Publish(ctx, tx, PaymentCaptured{OrderID: m.OrderID})
		return err
	})); err != nil {
		return err
	}

	sagas, err := saga.NewSQLStore(s.drv, saga.WithTable(n.sagas))
	if err != nil {
		return err
	}
	sagaApply := func(c *saga.Context[Payment], kind, order string) error {
		tx, ok := saga.TxOf(c, s.drv)
		if !ok {
			return fmt.Errorf("the saga transition has no %s transaction", s.db.dialect)
		}
		return apply(c, tx, kind, order)
	}
	def := saga.Define[Payment]("payment")
	saga.StartedBy(def, func(e PaymentRequested) string { return e.OrderID },
		func(c *saga.Context[Payment], st *Payment, e PaymentRequested) error {
			if !c.IsNew() {
				return nil
			}
			st.OrderID = e.OrderID
			c.Send(CapturePayment{OrderID: e.OrderID, Amount: e.Amount})
			return sagaApply(c, e.MessageType(), e.OrderID)
		})
	saga.Handles(def, func(e PaymentCaptured) string { return e.OrderID },
		func(c *saga.Context[Payment], st *Payment, e PaymentCaptured) error {
			if st.Captured {
				return nil
			}
			st.Captured = true
			c.Complete()
			return sagaApply(c, e.MessageType(), e.OrderID)
		})
	if err := saga.Register(app, def, sagas, saga.WithOutbox(ob), saga.WithRetention(time.Hour),
		saga.WithUnknownInstance(saga.UnknownIgnore)); err != nil {
		return err
	}
	go func() {
		select {
		case <-app.Running():
			log.Info("consumer ready", "transport", t.Scheme, "store", s.db.dialect)
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
	exec func(ctx context.Context, query string, args ...any) error
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
				err := s.exec(ctx, s.sql, env.ID, env.Type, pid)
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
