// Command scheduler shows Hexeract's scheduler: a delayed message
// scheduled in the business transaction that creates an invoice, a cron job
// that fires once per tick across replicas, and redelivery of a failing
// message after increasing delays, ending in the dead-letter topic with its
// history. Due messages go through the transactional outbox and its relay
// to the bus. It builds the scheduler, the outbox and the relay piece by
// piece (scheduler.New, outbox.New), as a service that adopts only them
// would; an App with hexeract.WithStore gets them with no wiring
// (App.Schedule, App.Cron; see examples/order-saga).
//
// It runs on SQLite in a temporary file by default (no service needed), or
// on the database $HEXERACT_DATABASE_URL names: postgres://... (pgx.Tx
// transactions) or mysql://... (*sql.Tx). It creates, then drops, its own
// tables. The bus is in memory unless -transport URL (or
// $HEXERACT_TRANSPORT) names a broker: any URL adapters.Open takes, for
// example amqp://guest:guest@127.0.0.1:5672/.
//
//	go run ./examples/scheduler
//	HEXERACT_DATABASE_URL=mysql://root@127.0.0.1:3306/test go run ./examples/scheduler
//	go run ./examples/scheduler -transport amqp://guest:guest@127.0.0.1:5672/
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/scheduler"
	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/mysql"
	"github.com/hexeract/hexeract/store/postgres"
	"github.com/hexeract/hexeract/store/sqlite"
	"github.com/hexeract/hexeract/store/storeurl"
)

// PaymentReminder is sent some time after an invoice is created.
type PaymentReminder struct {
	InvoiceID string `json:"invoice_id"`
}

// MessageType returns the wire name.
func (PaymentReminder) MessageType() string { return "billing.payment_reminder" }

// Heartbeat is produced by a cron job every second.
type Heartbeat struct {
	Tick time.Time `json:"tick"`
}

// MessageType returns the wire name.
func (Heartbeat) MessageType() string { return "ops.heartbeat" }

// ChargeCard fails twice (a flaky provider), then succeeds.
type ChargeCard struct {
	ChargeID string `json:"charge_id"`
}

// MessageType returns the wire name.
func (ChargeCard) MessageType() string { return "billing.charge_card" }

// IssueRefund always fails: it ends in the dead-letter topic.
type IssueRefund struct {
	RefundID string `json:"refund_id"`
}

// MessageType returns the wire name.
func (IssueRefund) MessageType() string { return "billing.issue_refund" }

func main() {
	transportURL := flag.String("transport", os.Getenv(adapters.EnvTransport),
		"transport URL (default $"+adapters.EnvTransport+", else mem:// in memory)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout, os.Getenv("HEXERACT_DATABASE_URL"), *transportURL); err != nil {
		log.Fatal(err)
	}
}

// run runs the scenario on the database dbURL names (postgres://,
// mysql://, sqlite:...; "" for SQLite in a temporary file) and the
// transport transportURL names ("" for the in-memory one), writing what
// happens to out.
func run(ctx context.Context, out io.Writer, dbURL, transportURL string) error {
	if transportURL == "" {
		transportURL = "mem://"
	}
	switch storeurl.Dialect(dbURL) {
	case store.Postgres:
		d, err := postgres.Open(ctx, dbURL)
		if err != nil {
			return err
		}
		defer func() { _ = d.Close() }()
		return example(ctx, out, d, transportURL, business[pgx.Tx]{
			param: func(i int) string { return "$" + strconv.Itoa(i) },
			exec: func(ctx context.Context, tx pgx.Tx, q string, args ...any) error {
				_, err := tx.Exec(ctx, q, args...)
				return err
			},
		})
	case store.MySQL:
		d, err := mysql.Open(ctx, dbURL)
		if err != nil {
			return err
		}
		defer func() { _ = d.Close() }()
		return example(ctx, out, d, transportURL, sqlBusiness())
	case "":
		dir, err := os.MkdirTemp("", "hexeract-scheduler-example-")
		if err != nil {
			return err
		}
		defer func() { _ = os.RemoveAll(dir) }()
		dbURL = "sqlite://" + filepath.Join(dir, "example.db")
	}
	d, err := sqlite.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	return example(ctx, out, d, transportURL, sqlBusiness())
}

// business runs the example's own SQL in a driver's transaction type.
type business[TTx any] struct {
	param func(i int) string // the i-th placeholder: $1 or ?
	exec  func(ctx context.Context, tx TTx, q string, args ...any) error
}

func sqlBusiness() business[*sql.Tx] {
	return business[*sql.Tx]{
		param: func(int) string { return "?" },
		exec: func(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
			_, err := tx.ExecContext(ctx, q, args...)
			return err
		},
	}
}

// example is the program, on any driver: the scheduler and the outbox take
// the driver's own transaction type TTx.
func example[TTx any](ctx context.Context, out io.Writer, d store.Driver[TTx], transportURL string, db business[TTx]) error {
	suffix := fmt.Sprintf("%d", time.Now().UnixNano()%1_000_000_000)
	schedTable, outboxTable := "example_scheduled_"+suffix, "example_outbox_"+suffix
	invoices := "example_invoices_" + suffix
	defer dropTables(d, db, invoices, schedTable, outboxTable)
	if err := d.InTx(ctx, func(ctx context.Context, tx TTx) error {
		return db.exec(ctx, tx, `CREATE TABLE `+invoices+` (id VARCHAR(64) PRIMARY KEY, amount INTEGER NOT NULL)`)
	}); err != nil {
		return err
	}

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	transport, err := adapters.Open(ctx, transportURL)
	if err != nil {
		return err
	}
	defer func() {
		if err := transport.Close(); err != nil {
			log.Printf("close the transport: %v", err)
		}
	}()

	// Outbox and its relay: due messages are handed to the outbox in the
	// transaction that removes them from the scheduler table.
	ob, err := outbox.New(d, outbox.WithTable(outboxTable))
	if err != nil {
		return err
	}
	if err := ob.Migrate(ctx); err != nil {
		return err
	}
	relay, err := ob.NewRelay(transport.Publisher, outbox.WithLogger(logger))
	if err != nil {
		return err
	}
	sched, err := scheduler.New(d, ob, scheduler.WithTable(schedTable), scheduler.WithLogger(logger),
		scheduler.WithTopicNaming(ob.Topics()))
	if err != nil {
		return err
	}
	if err := sched.Migrate(ctx); err != nil {
		return err
	}

	// Redelivery (300 ms, then 600 ms) takes over after 2 immediate attempts;
	// it sits in the default chain between DeadLetter and Retry.
	redelivery, err := sched.Redelivery(scheduler.RedeliveryConfig{
		Delays: []time.Duration{300 * time.Millisecond, 600 * time.Millisecond},
		Logger: logger,
	})
	if err != nil {
		return err
	}
	app, err := hexeract.New(
		hexeract.WithPubSub(transport.Publisher, transport.Subscriber),
		hexeract.WithLogger(logger),
		hexeract.WithDefaultMiddleware(func(c *middleware.DefaultConfig) {
			c.Redelivery = redelivery
			c.Retry = middleware.RetryPolicy{MaxAttempts: 2, InitialInterval: 20 * time.Millisecond}
		}),
		hexeract.WithWorker(relay),
		hexeract.WithWorker(sched),
	)
	if err != nil {
		return err
	}

	// A cron job: every second, once per tick however many replicas run.
	err = sched.Cron("* * * * * *", func(tick time.Time) []router.Message {
		return []router.Message{Heartbeat{Tick: tick}}
	}, scheduler.WithCronName("heartbeat"))
	if err != nil {
		return err
	}

	reminders := make(chan string, 1)
	beats := make(chan time.Time, 16)
	charged := make(chan string, 1)
	var chargeCalls, refundCalls atomic.Int32
	err = errors.Join(
		hexeract.HandleFunc(app, func(ctx context.Context, m PaymentReminder) error {
			env, _ := router.EnvelopeFrom(ctx)
			due, _ := time.Parse(time.RFC3339Nano, env.Metadata.Get(router.KeyDueAt))
			reminders <- fmt.Sprintf("reminder for %s delivered, not early: %t", m.InvoiceID, !time.Now().Before(due))
			return nil
		}),
		hexeract.HandleFunc(app, func(ctx context.Context, m Heartbeat) error {
			beats <- m.Tick
			return nil
		}),
		hexeract.HandleFunc(app, func(ctx context.Context, m ChargeCard) error {
			n := chargeCalls.Add(1)
			if n <= 2 {
				return fmt.Errorf("card provider timeout (call %d)", n)
			}
			env, _ := router.EnvelopeFrom(ctx)
			charged <- fmt.Sprintf("charge %s succeeded on handler call %d after %s redelivery", m.ChargeID, n, env.Metadata.Get(router.KeyRedeliveries))
			return nil
		}),
		hexeract.HandleFunc(app, func(ctx context.Context, m IssueRefund) error {
			return fmt.Errorf("refund provider rejected %s (call %d)", m.RefundID, refundCalls.Add(1))
		}),
	)
	if err != nil {
		return err
	}
	dead, err := transport.Subscriber.Subscribe(ctx, "billing.issue_refund.dlq")
	if err != nil {
		return err
	}

	runCtx, stop := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- app.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-runErr; err != nil {
			log.Printf("run the App: %v", err)
		}
	}()
	select {
	case <-app.Running():
	case <-ctx.Done():
		return ctx.Err()
	}

	// Create an invoice and schedule its reminder in one transaction: both
	// commit, or neither does.
	if err := d.InTx(ctx, func(ctx context.Context, tx TTx) error {
		if err := db.exec(ctx, tx, `INSERT INTO `+invoices+` (id, amount) VALUES (`+db.param(1)+`, `+db.param(2)+`)`, "inv-1", 4200); err != nil {
			return err
		}
		_, err := sched.After(ctx, tx, 500*time.Millisecond, PaymentReminder{InvoiceID: "inv-1"})
		return err
	}); err != nil {
		return err
	}
	fmt.Fprintln(out, "scheduled a reminder for inv-1 in 500ms")
	// The failing messages go through the outbox like any other.
	if err := ob.InTx(ctx, func(ctx context.Context, tx TTx) error {
		_, err := ob.Publish(ctx, tx, ChargeCard{ChargeID: "c-1"}, IssueRefund{RefundID: "r-1"})
		return err
	}); err != nil {
		return err
	}

	wait := func(what string) error {
		return fmt.Errorf("timed out waiting for %s: %w", what, ctx.Err())
	}
	select {
	case line := <-reminders:
		fmt.Fprintln(out, line)
	case <-ctx.Done():
		return wait("the reminder")
	}
	select {
	case tick := <-beats:
		fmt.Fprintf(out, "cron heartbeat fired for a whole second: %t\n", tick.Equal(tick.Truncate(time.Second)))
	case <-ctx.Done():
		return wait("the heartbeat")
	}
	select {
	case line := <-charged:
		fmt.Fprintln(out, line)
	case <-ctx.Done():
		return wait("the charge")
	}
	select {
	case msg := <-dead:
		msg.Ack()
		history, err := scheduler.FaultHistory(msg)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "refund r-1 dead-lettered after %d rounds (%s: %s)\n", len(history), router.KeyFaultError, msg.Metadata.Get(router.KeyFaultError))
		for _, f := range history {
			fmt.Fprintf(out, "  round %d: %d attempts, %s\n", f.Round, f.Attempts, f.Error)
		}
	case <-ctx.Done():
		return wait("the dead letter")
	}
	fmt.Fprintln(out, "scheduler example done")
	return nil
}

// dropTables drops the example's tables and forgets their migrations.
func dropTables[TTx any](d store.Driver[TTx], db business[TTx], invoices, sched, ob string) {
	ctx := context.Background()
	for _, t := range []string{invoices, sched, sched + "_ticks", sched + "_leases", ob, ob + "_dead", ob + "_delivered", ob + "_keys"} {
		_ = d.InTx(ctx, func(ctx context.Context, tx TTx) error { return db.exec(ctx, tx, `DROP TABLE IF EXISTS `+t) })
	}
	_ = d.InTx(ctx, func(ctx context.Context, tx TTx) error {
		return db.exec(ctx, tx, `DELETE FROM `+store.MigrationTable+` WHERE component IN (`+db.param(1)+`, `+db.param(2)+`)`,
			"scheduler:"+sched, "outbox:"+ob)
	})
}
