package sqs_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/router"
)

// orderPlaced is a typed message for the Hexeract round trip.
type orderPlaced struct {
	OrderID string  `json:"order_id"`
	Amount  float64 `json:"amount"`
}

func (orderPlaced) MessageType() string { return "orders.placed" }

// TestHexeractTypedRoundTrip publishes a typed message through a Hexeract App
// on the SQS adapter and checks that the typed handler gets it with its
// envelope.
func TestHexeractTypedRoundTrip(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	pub, sub := newPub(t, cfg), newSub(t, cfg)
	sfx := suffix()
	app, err := hexeract.New(
		hexeract.WithPubSub(pub, sub),
		hexeract.WithLogger(slog.New(slog.DiscardHandler)),
		hexeract.WithTopicFunc(func(messageType string) string { return messageType + "." + sfx }),
	)
	if err != nil {
		t.Fatal(err)
	}
	type received struct {
		msg orderPlaced
		env router.Envelope
	}
	got := make(chan received, 1)
	err = hexeract.HandleFunc(app, func(ctx context.Context, m orderPlaced) error {
		env, _ := router.EnvelopeFrom(ctx)
		got <- received{m, env}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- app.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Error(err)
		}
		_ = app.Close()
	}()
	<-app.Running()

	want := orderPlaced{OrderID: "o-42", Amount: 19.5}
	if err := app.Publish(ctx, want); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.msg != want || r.env.Type != "orders.placed" || r.env.ID == "" {
			t.Fatalf("handler got %+v with envelope %+v", r.msg, r.env)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("typed handler did not receive the message")
	}
}
