// Command quickstart is Hexeract's quick start: it registers a few users,
// each user row and its UserRegistered event in one transaction (the
// transactional outbox, on SQLite in a temporary file), and prints what the
// typed handlers receive once the App's relay has delivered the events on
// the in-memory transport. It needs no service: go run ./examples/quickstart
package main

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/store/sqlite"
)

// UserRegistered is a domain event; its wire name is "users.registered".
type UserRegistered struct {
	UserID string `json:"user_id"`
	Email  string `json:"email"`
}

// MessageType returns the stable wire name of the event.
func (UserRegistered) MessageType() string { return "users.registered" }

// WelcomeEmailSent is published by the UserRegistered handler.
type WelcomeEmailSent struct {
	UserID string `json:"user_id"`
}

// MessageType returns the stable wire name of the event.
func (WelcomeEmailSent) MessageType() string { return "emails.welcome_sent" }

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The store: an embedded SQLite database in a temporary file. Any
	// driver works the same (store/postgres, store/mysql).
	dir, err := os.MkdirTemp("", "hexeract-quickstart-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	db, err := sqlite.Open(ctx, "sqlite://"+filepath.Join(dir, "quickstart.db"))
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()

	// The App: in-memory transport, the outbox and its relay on the store.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	app, err := hexeract.New(hexeract.WithLogger(logger), hexeract.WithSource("/quickstart"), hexeract.WithStore(db))
	if err != nil {
		return err
	}
	defer func() {
		if err := app.Close(); err != nil {
			log.Printf("close the App: %v", err)
		}
	}()
	// The tables: Hexeract's (what `hexeract migrate up` does) and ours.
	if err := app.Migrate(ctx); err != nil {
		return err
	}
	if _, err := db.DB().ExecContext(ctx, `CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT NOT NULL)`); err != nil {
		return err
	}

	users := []UserRegistered{
		{UserID: "u-1", Email: "ada@example.com"},
		{UserID: "u-2", Email: "grace@example.com"},
		{UserID: "u-3", Email: "linus@example.com"},
	}
	var done sync.WaitGroup
	done.Add(len(users))

	// A typed handler: it gets a UserRegistered, never raw bytes, and
	// publishes a follow-up event that is correlated with the first.
	err = hexeract.HandleFunc(app, func(ctx context.Context, ev UserRegistered) error {
		env, _ := router.EnvelopeFrom(ctx)
		fmt.Printf("registered %s <%s> (message %s)\n", ev.UserID, ev.Email, env.ID)
		return app.Publish(ctx, WelcomeEmailSent{UserID: ev.UserID})
	})
	if err != nil {
		return err
	}
	err = hexeract.HandleFunc(app, func(ctx context.Context, ev WelcomeEmailSent) error {
		defer done.Done()
		env, _ := router.EnvelopeFrom(ctx)
		fmt.Printf("welcome email sent to %s (caused by %s)\n", ev.UserID, env.CausationID)
		return nil
	})
	if err != nil {
		return err
	}

	runErr := make(chan error, 1)
	go func() { runErr <- app.Run(ctx) }()
	<-app.Running()

	// Each user row and its event commit together, or neither does: inside
	// InTx, Publish writes the event into the outbox table, and the relay
	// delivers it once the transaction has committed.
	for _, u := range users {
		err := hexeract.InTx(ctx, app, func(ctx context.Context, tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO users (id, email) VALUES (?, ?)`, u.UserID, u.Email); err != nil {
				return err
			}
			return app.Publish(ctx, u)
		})
		if err != nil {
			return err
		}
	}
	done.Wait()
	cancel()
	if err := <-runErr; err != nil {
		return err
	}
	fmt.Println("quickstart done: 3 users registered, 3 welcome emails sent")
	return nil
}
