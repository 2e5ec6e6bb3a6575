// Command outbox is the quick start of the original Hexeract:
// registering a user writes the user row and a UserRegistered event in one
// transaction (the transactional outbox); a relay running inside the App
// delivers the event; its handler records a welcome email through the
// inbox, so a redelivered event is handled once.
//
// It builds the outbox, its relay and the inbox piece by piece
// (outbox.New(driver), Outbox.NewRelay, outbox.NewInbox), as a service that
// adopts only the outbox would. An App with a store (hexeract.WithStore)
// gets the same with no wiring: hexeract.InTx and App.Publish write into its
// outbox, and its relay runs as a worker (see examples/quickstart and
// examples/order-saga).
//
// It runs on SQLite in a temporary file by default (no service needed), or
// on the database $HEXERACT_DATABASE_URL names: postgres://... (pgx.Tx
// transactions) or mysql://... (*sql.Tx). The bus is in memory unless
// -transport URL (or $HEXERACT_TRANSPORT) names a broker: any URL
// adapters.Open takes, for example amqp://guest:guest@127.0.0.1:5672/.
//
//	go run ./examples/outbox
//	HEXERACT_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable go run ./examples/outbox
//	go run ./examples/outbox -transport amqp://guest:guest@127.0.0.1:5672/
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/mysql"
	"github.com/hexeract/hexeract/store/postgres"
	"github.com/hexeract/hexeract/store/sqlite"
	"github.com/hexeract/hexeract/store/storeurl"
)

// UserRegistered is the domain event; its wire name is "users.registered".
type UserRegistered struct {
	UserID string `json:"user_id"`
	Email  string `json:"email"`
}

// MessageType returns the stable wire name of the event.
func (UserRegistered) MessageType() string { return "users.registered" }

// OrderingKey keeps the events of one user in commit order.
func (e UserRegistered) OrderingKey() string { return e.UserID }

func main() {
	transportURL := flag.String("transport", os.Getenv(adapters.EnvTransport),
		"transport URL (default $"+adapters.EnvTransport+", else mem:// in memory)")
	flag.Parse()
	if err := run(context.Background(), *transportURL); err != nil {
		log.Fatal(err)
	}
}

// run registers a user on the transport transportURL names ("" for the
// in-memory one) and waits for its welcome email, on the database
// $HEXERACT_DATABASE_URL names (SQLite in a temporary file when unset).
func run(ctx context.Context, transportURL string) error {
	if transportURL == "" {
		transportURL = "mem://"
	}
	url := os.Getenv("HEXERACT_DATABASE_URL")
	switch storeurl.Dialect(url) {
	case store.Postgres:
		d, err := postgres.Open(ctx, url)
		if err != nil {
			return err
		}
		defer func() { _ = d.Close() }()
		return example(ctx, d, transportURL, business[pgx.Tx]{
			param: func(i int) string { return "$" + strconv.Itoa(i) },
			exec: func(ctx context.Context, tx pgx.Tx, q string, args ...any) error {
				_, err := tx.Exec(ctx, q, args...)
				return err
			},
		})
	case store.MySQL:
		d, err := mysql.Open(ctx, url)
		if err != nil {
			return err
		}
		defer func() { _ = d.Close() }()
		return example(ctx, d, transportURL, sqlBusiness())
	case "":
		dir, err := os.MkdirTemp("", "hexeract-outbox-example-")
		if err != nil {
			return err
		}
		defer func() { _ = os.RemoveAll(dir) }()
		url = "sqlite://" + filepath.Join(dir, "example.db")
	}
	d, err := sqlite.Open(ctx, url)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	return example(ctx, d, transportURL, sqlBusiness())
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

// example is the program, on any driver: the outbox, the inbox and the
// handler take the driver's own transaction type TTx.
func example[TTx any](ctx context.Context, d store.Driver[TTx], transportURL string, db business[TTx]) error {
	// Schema: the example's business tables, plus the outbox and inbox
	// tables (the same migrations "hexeract migrate up" applies).
	if err := d.InTx(ctx, func(ctx context.Context, tx TTx) error {
		if err := db.exec(ctx, tx, `CREATE TABLE IF NOT EXISTS example_users (id VARCHAR(64) PRIMARY KEY, email VARCHAR(255) NOT NULL)`); err != nil {
			return err
		}
		return db.exec(ctx, tx, `CREATE TABLE IF NOT EXISTS example_welcome_emails (user_id VARCHAR(64) PRIMARY KEY)`)
	}); err != nil {
		return err
	}
	opts := []outbox.Option{outbox.WithTable("example_outbox"), outbox.WithSource("/users")}
	ob, err := outbox.New(d, opts...)
	if err != nil {
		return err
	}
	if err := ob.Migrate(ctx); err != nil {
		return err
	}
	inbox, err := outbox.NewInbox(d, outbox.WithInboxTable("example_inbox"))
	if err != nil {
		return err
	}
	if err := inbox.Migrate(ctx); err != nil {
		return err
	}
	// The transport (in memory by default; any URL adapters.Open takes) and
	// the relay that moves committed outbox rows onto it, run by the App.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	bus, err := adapters.Open(ctx, transportURL)
	if err != nil {
		return err
	}
	defer func() {
		if err := bus.Close(); err != nil {
			log.Printf("close the transport: %v", err)
		}
	}()
	relay, err := ob.NewRelay(bus.Publisher, outbox.WithLogger(logger))
	if err != nil {
		return err
	}
	app, err := hexeract.New(hexeract.WithPubSub(bus.Publisher, bus.Subscriber), hexeract.WithWorker(relay), hexeract.WithLogger(logger))
	if err != nil {
		return err
	}
	defer func() {
		if err := app.Close(); err != nil {
			log.Printf("close the App: %v", err)
		}
	}()

	handled := make(chan string, 1)
	// The handler's database work and the inbox record commit in one
	// transaction: a redelivered event finds its inbox row and is skipped.
	welcome := outbox.TxHandler(inbox, "welcome-email", func(ctx context.Context, tx TTx, ev UserRegistered) error {
		if err := db.exec(ctx, tx, `INSERT INTO example_welcome_emails (user_id) VALUES (`+db.param(1)+`)`, ev.UserID); err != nil {
			return err
		}
		env, _ := router.EnvelopeFrom(ctx)
		fmt.Printf("handled %s for %s <%s> (source %s)\n", env.Type, ev.UserID, ev.Email, env.Source)
		handled <- ev.UserID
		return nil
	})
	if err := hexeract.Handle(app, welcome); err != nil {
		return err
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runErr := make(chan error, 1)
	go func() { runErr <- app.Run(runCtx) }()
	<-app.Running()

	// Register a user: the business row and the event commit together.
	userID := "u-" + router.NewID()[24:]
	err = ob.InTx(ctx, func(ctx context.Context, tx TTx) error {
		if err := db.exec(ctx, tx, `INSERT INTO example_users (id, email) VALUES (`+db.param(1)+`, `+db.param(2)+`)`, userID, "ada@example.com"); err != nil {
			return err
		}
		_, err := ob.Publish(ctx, tx, UserRegistered{UserID: userID, Email: "ada@example.com"})
		return err
	})
	if err != nil {
		return err
	}
	fmt.Println("registered user and stored UserRegistered in the outbox")

	// A registration that fails after publishing rolls back: no event.
	_ = ob.InTx(ctx, func(ctx context.Context, tx TTx) error {
		if _, err := ob.Publish(ctx, tx, UserRegistered{UserID: "never", Email: "x@example.com"}); err != nil {
			return err
		}
		return errors.New("validation failed")
	})

	select {
	case id := <-handled:
		if id != userID {
			return fmt.Errorf("handled %s, want %s", id, userID)
		}
	case <-time.After(10 * time.Second):
		return errors.New("the event was not delivered within 10s")
	}
	// The relay removes the row once the transport acknowledged it.
	var st outbox.Stats
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if st, err = ob.Stats(ctx); err != nil || st.Pending == 0 || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		return err
	}
	fmt.Printf("outbox on %s: pending %d, dead %d\n", d.Dialect(), st.Pending, st.Dead)
	stop()
	return <-runErr
}
