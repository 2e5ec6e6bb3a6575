// Command quickstart is Hexeract's quick start: it publishes a few typed
// events on the in-memory transport and prints what the typed handlers
// receive. It needs no service: go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"sync"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/router"
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
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	app, err := hexeract.New(hexeract.WithLogger(logger), hexeract.WithSource("/quickstart"))
	if err != nil {
		return err
	}
	defer func() {
		if err := app.Close(); err != nil {
			log.Printf("close the App: %v", err)
		}
	}()

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

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- app.Run(ctx) }()
	<-app.Running()

	for _, u := range users {
		if err := app.Publish(ctx, u); err != nil {
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
