package hexeract_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/router"
)

// AccountOpened and WelcomeEmailSent are the example's message types.
type AccountOpened struct {
	UserID string `json:"user_id"`
	Email  string `json:"email"`
}

func (AccountOpened) MessageType() string { return "accounts.opened" }

type WelcomeEmailSent struct {
	UserID string `json:"user_id"`
}

func (WelcomeEmailSent) MessageType() string { return "emails.welcome_sent" }

// Example builds an App on the in-memory transport, adds a Watermill
// middleware, and chains two typed handlers: the message the first one
// publishes carries the same correlation id, and the first message's id as
// its causation id.
func Example() {
	app, err := hexeract.New(
		hexeract.WithSource("accounts"),
		hexeract.WithLogger(slog.New(slog.DiscardHandler)),
	)
	if err != nil {
		panic(err)
	}
	defer app.Close()

	// Any Watermill middleware; this one logs each message type.
	app.Use(func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			fmt.Println("middleware saw", msg.Metadata.Get(router.KeyType))
			return h(msg)
		}
	})

	var firstID string
	done := make(chan struct{})
	_ = hexeract.HandleFunc(app, func(ctx context.Context, u AccountOpened) error {
		env, _ := router.EnvelopeFrom(ctx)
		firstID = env.ID
		fmt.Println("opened", u.UserID, "correlation", env.CorrelationID)
		// Publishing from a handler keeps the conversation's correlation.
		return app.Publish(ctx, WelcomeEmailSent{UserID: u.UserID})
	})
	_ = hexeract.HandleFunc(app, func(ctx context.Context, w WelcomeEmailSent) error {
		env, _ := router.EnvelopeFrom(ctx)
		fmt.Println("welcome sent to", w.UserID, "correlation", env.CorrelationID, "caused by the first:", env.CausationID == firstID)
		close(done)
		return nil
	})

	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = app.Run(ctx); close(stopped) }()
	<-app.Running()

	// An HTTP request id, say, becomes the correlation id of what follows.
	reqCtx := router.WithCorrelationID(ctx, "req-7")
	if err := app.Publish(reqCtx, AccountOpened{UserID: "u-1", Email: "ada@example.com"}); err != nil {
		panic(err)
	}
	<-done
	cancel()
	<-stopped
	// Output:
	// middleware saw accounts.opened
	// opened u-1 correlation req-7
	// middleware saw emails.welcome_sent
	// welcome sent to u-1 correlation req-7 caused by the first: true
}
