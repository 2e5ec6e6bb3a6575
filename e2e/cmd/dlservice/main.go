// Command dlservice is the consumer the dead-letter fault test (package
// e2e, TestDeadLetterStoreUnderFaults) starts as a separate OS process, so
// it can be killed with SIGKILL mid-stream. It runs an App with a store
// (hexeract.WithStore on PostgreSQL, MariaDB or SQLite) whose one handler
// always fails with a permanent error, so every message it consumes is
// dead-lettered into the store's table and only then acknowledged.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/mysql"
	"github.com/hexeract/hexeract/store/postgres"
	"github.com/hexeract/hexeract/store/sqlite"
	"github.com/hexeract/hexeract/store/storeurl"
)

type flags struct {
	db, transport, topic, prefix, group string
}

func main() {
	var f flags
	flag.StringVar(&f.db, "db", os.Getenv("HEXERACT_E2E_DB"), "store URL: postgres://, mysql:// or sqlite:// (env HEXERACT_E2E_DB)")
	flag.StringVar(&f.transport, "transport", os.Getenv("HEXERACT_E2E_TRANSPORT"), "transport URL for adapters.Open (env HEXERACT_E2E_TRANSPORT)")
	flag.StringVar(&f.topic, "topic", "", "topic to consume")
	flag.StringVar(&f.prefix, "prefix", "", "table prefix of the App's store")
	flag.StringVar(&f.group, "group", "dlservice", "consumer group")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).
		With("role", "dlservice", "pid", os.Getpid())
	if err := run(f, log); err != nil {
		log.Error("dlservice failed", "error", err)
		os.Exit(1)
	}
}

func run(f flags, log *slog.Logger) error {
	if f.db == "" || f.transport == "" || f.topic == "" || f.prefix == "" {
		return errors.New("-db, -transport, -topic and -prefix are required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	switch storeurl.Dialect(f.db) {
	case store.Postgres:
		// Connecting may fail while the database restarts: retry, so the
		// test's supervisor does not have to.
		drv, err := retry(ctx, log, func() (*postgres.Driver, error) { return postgres.Open(ctx, f.db) })
		if err != nil {
			return err
		}
		defer func() { _ = drv.Close() }()
		return consume(ctx, f, log, drv)
	case store.MySQL:
		drv, err := retry(ctx, log, func() (*mysql.Driver, error) { return mysql.Open(ctx, f.db) })
		if err != nil {
			return err
		}
		defer func() { _ = drv.Close() }()
		return consume(ctx, f, log, drv)
	case store.SQLite:
		drv, err := sqlite.Open(ctx, f.db)
		if err != nil {
			return err
		}
		defer func() { _ = drv.Close() }()
		return consume(ctx, f, log, drv)
	}
	return fmt.Errorf("-db %s: unknown scheme", store.RedactURL(f.db))
}

func retry[T any](ctx context.Context, log *slog.Logger, open func() (T, error)) (T, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		v, err := open()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return v, err
		}
		log.Warn("database not reachable yet; retrying", "error", err)
		time.Sleep(250 * time.Millisecond)
	}
}

// consume runs the App until SIGTERM.
func consume[TTx any](ctx context.Context, f flags, log *slog.Logger, drv store.Driver[TTx]) error {
	t, err := adapters.Open(ctx, f.transport, adapters.WithGroup(f.group), adapters.WithWatermillLogger(watermill.NewSlogLogger(log)))
	if err != nil {
		return err
	}
	defer func() { _ = t.Close() }()
	app, err := hexeract.New(
		hexeract.WithPubSub(t.Publisher, t.Subscriber), hexeract.WithLogger(log), hexeract.WithSource("/e2e/dlservice"),
		hexeract.WithStore(drv, hexeract.WithTablePrefix(f.prefix), hexeract.WithoutRelay(), hexeract.WithoutScheduler()),
		hexeract.WithDefaultMiddleware(func(c *middleware.DefaultConfig) {
			c.Retry = middleware.RetryPolicy{MaxAttempts: 1}
			c.DeadLetter.Group = f.group
			c.Timeout = 20 * time.Second
		}),
	)
	if err != nil {
		return err
	}
	if err := app.AddHandler("always-fails", f.topic, func(m *message.Message) error {
		// One line per call on stdout, unbuffered: the test counts the
		// messages handled more than once (redelivered after a kill).
		fmt.Println("handled " + m.UUID)
		return router.Permanent(errors.New("dlservice: this handler always fails"))
	}); err != nil {
		return err
	}
	if _, err := retry(ctx, log, func() (struct{}, error) { return struct{}{}, app.Migrate(ctx) }); err != nil {
		return err
	}
	go func() {
		select {
		case <-app.Running():
			log.Info("dlservice running", "topic", f.topic)
		case <-ctx.Done():
		}
	}()
	err = app.Run(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
