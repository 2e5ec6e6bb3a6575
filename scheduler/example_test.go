package scheduler_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/hexeract/hexeract/store/postgres"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hexeract/hexeract/adapters/gochannel"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/scheduler"
)

// PaymentReminder is a message scheduled for later.
type PaymentReminder struct {
	InvoiceID string `json:"invoice_id"`
}

func (PaymentReminder) MessageType() string { return "billing.payment_reminder" }

// Heartbeat is produced by a cron job.
type Heartbeat struct {
	At time.Time `json:"at"`
}

func (Heartbeat) MessageType() string { return "ops.heartbeat" }

func examplePool() *pgxpool.Pool {
	url := os.Getenv("HEXERACT_TEST_POSTGRES")
	if url == "" {
		url = testenv.DefaultPostgres
	}
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		log.Fatal(err)
	}
	return pool
}

// exampleTable returns a fresh table name and a function that drops it.
func exampleTable(pool *pgxpool.Pool) (string, func()) {
	table := "sched_example_" + testenv.Suffix()
	return table, func() { dropTables(pool, table) }
}

// Schedule a message in a transaction; it is handed off when due, not before.
func ExampleScheduler_After() {
	ctx := context.Background()
	pool := examplePool()
	defer pool.Close()
	table, drop := exampleTable(pool)
	defer drop()

	bus := gochannel.New(gochannel.Config{Buffer: 8}, watermill.NopLogger{})
	defer bus.Close()
	reminders, _ := bus.Subscribe(ctx, "billing.payment_reminder")

	// In production the sink is the outbox (outbox.New): the hand-off is
	// then atomic. Here the messages go straight to an in-memory bus.
	s, err := scheduler.New(postgres.New(pool), scheduler.PublisherSink(bus), scheduler.WithTable(table))
	if err != nil {
		log.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	defer func() { stop(); <-done }()

	start := time.Now()
	tx, err := pool.Begin(ctx)
	if err != nil {
		log.Fatal(err)
	}
	// ... business writes in tx ...
	ids, err := s.After(ctx, tx, 300*time.Millisecond, PaymentReminder{InvoiceID: "inv-42"})
	if err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		log.Fatal(err)
	}

	msg := <-reminders
	msg.Ack()
	due, _ := time.Parse(time.RFC3339Nano, msg.Metadata.Get(router.KeyDueAt))
	fmt.Println("received", msg.Metadata.Get(router.KeyType), string(msg.Payload))
	fmt.Println("same id:", msg.UUID == ids[0])
	fmt.Println("not early:", !time.Now().Before(due) && time.Since(start) >= 300*time.Millisecond)
	// Output:
	// received billing.payment_reminder {"invoice_id":"inv-42"}
	// same id: true
	// not early: true
}

// A cron job that fires every second, once per tick across every replica
// sharing the table.
func ExampleScheduler_Cron() {
	ctx := context.Background()
	pool := examplePool()
	defer pool.Close()
	table, drop := exampleTable(pool)
	defer drop()

	bus := gochannel.New(gochannel.Config{Buffer: 8}, watermill.NopLogger{})
	defer bus.Close()
	beats, _ := bus.Subscribe(ctx, "ops.heartbeat")

	s, err := scheduler.New(postgres.New(pool), scheduler.PublisherSink(bus), scheduler.WithTable(table))
	if err != nil {
		log.Fatal(err)
	}
	err = s.Cron("* * * * * *", func(tick time.Time) []router.Message {
		return []router.Message{Heartbeat{At: tick}}
	}, scheduler.WithCronName("heartbeat"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.Cron("every second", nil))
	if err := s.Migrate(ctx); err != nil { // or `hexeract migrate up`; Run does not migrate
		log.Fatal(err)
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	defer func() { stop(); <-done }()

	msg := <-beats
	msg.Ack()
	tick, _ := time.Parse(time.RFC3339Nano, msg.Metadata.Get(router.KeyCronTick))
	fmt.Println("job:", msg.Metadata.Get(router.KeyCronJob))
	fmt.Println("tick on a whole second:", tick.Equal(tick.Truncate(time.Second)))
	// Output:
	// scheduler: cron "every second": nil produce function
	// job: heartbeat
	// tick on a whole second: true
}

// The redelivery middleware sits between the dead-letter middleware and the
// immediate retries.
func ExampleScheduler_Redelivery() {
	pool := examplePool()
	defer pool.Close()
	bus := gochannel.New(gochannel.Config{}, watermill.NopLogger{})
	defer bus.Close()
	s, err := scheduler.New(postgres.New(pool), scheduler.PublisherSink(bus))
	if err != nil {
		log.Fatal(err)
	}
	deadLetter, _ := middleware.DeadLetter(bus, middleware.DeadLetterOptions{})
	redelivery, err := s.Redelivery(scheduler.RedeliveryConfig{
		Delays: []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute},
	})
	if err != nil {
		log.Fatal(err)
	}
	retry, _ := middleware.Retry(middleware.RetryPolicy{MaxAttempts: 3})

	r, _ := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	r.AddMiddleware(deadLetter, redelivery, retry, middleware.Correlation)
	fmt.Println("chain: dead letter → redelivery (10s, 1m, 5m) → 3 immediate attempts → handler")
	// Output: chain: dead letter → redelivery (10s, 1m, 5m) → 3 immediate attempts → handler
}
