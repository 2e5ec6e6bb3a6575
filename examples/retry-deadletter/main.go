// Command retry-deadletter shows Hexeract's default middleware at work: a
// transient failure is retried with backoff until it succeeds, a permanent
// failure, a panic and a message that cannot be decoded end in the
// dead-letter topic with their fault details, and the consumer keeps going.
//
// It runs in memory and needs no service:
//
//	go run ./examples/retry-deadletter
//
// With -transport it runs on a real broker (any URL adapters.Open takes, for
// example amqp://guest:guest@127.0.0.1:5672/ or redis://127.0.0.1:6379/0) and
// leaves the dead letters on payments.dlq for the CLI:
//
//	go run ./examples/retry-deadletter -transport redis://127.0.0.1:6379/0
//	go run ./cmd/hexeract dlq list payments.dlq --transport redis://127.0.0.1:6379/0
//	go run ./cmd/hexeract dlq move payments.dlq --transport redis://127.0.0.1:6379/0
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
	"sort"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
)

// PaymentRequested asks the payment service to charge a card.
type PaymentRequested struct {
	ID     string `json:"id"`
	Card   string `json:"card"`
	Amount int    `json:"amount"`
}

// MessageType returns the wire name of the message.
func (PaymentRequested) MessageType() string { return "payments" }

func main() {
	transport := flag.String("transport", "", "transport URL (default: in memory)")
	flag.Parse()
	if err := run(*transport); err != nil {
		log.Fatal(err)
	}
}

func run(transportURL string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError + 4})) // quiet
	opts := []hexeract.Option{
		hexeract.WithLogger(logger),
		// Tune the default chain: 3 attempts, 50 ms then 100 ms between them.
		hexeract.WithDefaultMiddleware(func(c *middleware.DefaultConfig) {
			c.Retry.MaxAttempts = 3
			c.Retry.InitialInterval = 50 * time.Millisecond
			c.Timeout = 5 * time.Second
		}),
	}
	var raw message.Publisher // for the garbage message, bypassing the codec
	var deadLetters <-chan *message.Message
	if transportURL != "" {
		t, err := adapters.Open(ctx, transportURL)
		if err != nil {
			return err
		}
		defer func() {
			if err := t.Close(); err != nil {
				log.Printf("close the transport: %v", err)
			}
		}()
		opts = append(opts, hexeract.WithPubSub(t.Publisher, t.Subscriber))
		raw = t.Publisher
	}
	app, err := hexeract.New(opts...)
	if err != nil {
		return err
	}
	defer func() {
		if err := app.Close(); err != nil {
			log.Printf("close the App: %v", err)
		}
	}()
	if raw == nil {
		// In memory, a message published before anyone subscribed is
		// dropped: read the dead-letter topic from the start.
		raw = app.Publisher()
		if deadLetters, err = app.Subscriber().Subscribe(ctx, "payments.dlq"); err != nil {
			return err
		}
	}

	var mu sync.Mutex
	var charged []string
	done := make(chan struct{}, 8)
	err = hexeract.HandleFunc(app, func(ctx context.Context, p PaymentRequested) error {
		attempt := middleware.Attempt(ctx)
		switch p.Card {
		case "flaky":
			if attempt < 3 {
				return fmt.Errorf("card network timeout (attempt %d)", attempt)
			}
		case "declined":
			return hexeract.Permanent(errors.New("card declined"))
		case "buggy":
			var limits map[string]int
			limits[p.ID] = p.Amount //nolint:staticcheck // the deliberate panic this example dead-letters // panics: nil map
		}
		mu.Lock()
		charged = append(charged, fmt.Sprintf("charged %s (%d) on attempt %d", p.ID, p.Amount, attempt))
		mu.Unlock()
		done <- struct{}{}
		return nil
	})
	if err != nil {
		return err
	}
	go func() { _ = app.Run(ctx) }()
	select {
	case <-app.Running():
	case <-ctx.Done():
		return ctx.Err()
	}

	for _, p := range []PaymentRequested{
		{ID: "p-1", Card: "ok", Amount: 10},
		{ID: "p-2", Card: "flaky", Amount: 20},
		{ID: "p-3", Card: "declined", Amount: 30},
		{ID: "p-4", Card: "buggy", Amount: 40},
	} {
		if err := app.Publish(ctx, p); err != nil {
			return err
		}
	}
	garbage := message.NewMessage("p-5", []byte(`{"id": "p-5", "amount": "a lot"}`))
	garbage.Metadata.Set(router.KeyType, "payments")
	if err := raw.Publish("payments", garbage); err != nil {
		return err
	}

	for range 2 {
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	sort.Strings(charged)
	for _, line := range charged {
		fmt.Println(line)
	}
	if deadLetters == nil {
		time.Sleep(time.Second) // let the last dead letter be written
		fmt.Println("dead letters are on payments.dlq; list them with: hexeract dlq list payments.dlq --transport <the same URL>")
		return nil
	}
	var lines []string
	for range 3 {
		select {
		case dead := <-deadLetters:
			dead.Ack()
			f, _ := middleware.FaultOf(dead.Metadata)
			var body struct{ ID string }
			_ = json.Unmarshal(dead.Payload, &body)
			id := body.ID
			line := fmt.Sprintf("dead letter %s: %s error after %d attempt(s): %s", id, f.Type, f.Attempts, f.Error)
			if f.Stack != "" {
				line += "\n    stack recorded (" + fmt.Sprint(len(f.Stack)) + " bytes)"
			}
			lines = append(lines, line)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	return nil
}
