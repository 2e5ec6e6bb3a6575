// Command mediator-bridge connects the in-process mediator to the message
// bus, in both directions:
//
//   - a mediator notification is forwarded onto the bus: a mediator
//     subscriber of OrderPlaced calls app.Publish;
//   - a bus message is dispatched into the mediator: a bus handler of
//     PaymentReceived calls mediator.Publish (a command would use
//     mediator.Execute).
//
// The mediator package itself knows nothing about the bus; the bridge is the
// two small generic functions below. It needs no service (the App uses the
// in-memory GoChannel transport): go run ./examples/mediator-bridge
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/mediator"
	"github.com/hexeract/hexeract/router"
)

// PlaceOrder is an in-process command, handled by the mediator.
type PlaceOrder struct {
	OrderID string
	Amount  int
}

// Validate rejects orders without an amount (see mediator.Validation).
func (c PlaceOrder) Validate() error {
	if c.Amount <= 0 {
		return errors.New("amount must be positive")
	}
	return nil
}

// OrderPlaced is a mediator notification that is also a bus message: other
// services learn about the order through the bus.
type OrderPlaced struct {
	OrderID string `json:"order_id"`
	Amount  int    `json:"amount"`
}

// MessageType returns the wire name of OrderPlaced.
func (OrderPlaced) MessageType() string { return "orders.placed" }

// PaymentReceived comes from the bus (here from the payment handler below,
// normally from another service) and is dispatched into the mediator.
type PaymentReceived struct {
	OrderID string `json:"order_id"`
	Amount  int    `json:"amount"`
}

// MessageType returns the wire name of PaymentReceived.
func (PaymentReceived) MessageType() string { return "payments.received" }

// ForwardToBus subscribes a mediator handler that publishes every N
// notification onto the bus through app. Messages published from inside a bus
// handler keep that handler's correlation id (ctx flows through the
// mediator).
func ForwardToBus[N router.Message](m *mediator.Mediator, app *hexeract.App) error {
	return mediator.SubscribeFunc(m, func(ctx context.Context, n N) error {
		return app.Publish(ctx, n)
	})
}

// DispatchFromBus adds a bus handler that publishes every N it consumes into
// the mediator. A mediator error fails the bus message, so the bus retries
// it or dead-letters it like any handler error.
func DispatchFromBus[N router.Message](app *hexeract.App, m *mediator.Mediator) error {
	return hexeract.HandleFunc(app, func(ctx context.Context, n N) error {
		return mediator.Publish(ctx, m, n)
	})
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, out io.Writer) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	app, err := hexeract.New(hexeract.WithLogger(logger), hexeract.WithSource("/mediator-bridge"))
	if err != nil {
		return err
	}
	defer func() {
		if err := app.Close(); err != nil {
			log.Printf("close the App: %v", err)
		}
	}()

	m, err := mediator.New(mediator.WithBehaviors(
		mediator.Recover(),
		mediator.Logging(logger),
		mediator.Validation(),
	))
	if err != nil {
		return err
	}

	// In-process: the command handler and a local subscriber.
	err = mediator.RegisterCommand(m, func(ctx context.Context, c PlaceOrder) error {
		fmt.Fprintf(out, "mediator: placed order %s for %d\n", c.OrderID, c.Amount)
		return mediator.Publish(ctx, m, OrderPlaced{OrderID: c.OrderID, Amount: c.Amount})
	})
	if err != nil {
		return err
	}
	err = mediator.SubscribeFunc(m, func(ctx context.Context, e OrderPlaced) error {
		fmt.Fprintf(out, "mediator: audit log has order %s\n", e.OrderID)
		return nil
	})
	if err != nil {
		return err
	}

	// Mediator -> bus.
	if err := ForwardToBus[OrderPlaced](m, app); err != nil {
		return err
	}

	// On the bus: a payment service charges placed orders. It would
	// normally run in another process.
	var mu sync.Mutex
	placedMsgID := map[string]string{} // order id -> id of its orders.placed bus message
	err = hexeract.HandleFunc(app, func(ctx context.Context, e OrderPlaced) error {
		env, _ := router.EnvelopeFrom(ctx)
		mu.Lock()
		placedMsgID[e.OrderID] = env.ID
		mu.Unlock()
		fmt.Fprintf(out, "bus: %s received order %s\n", env.Type, e.OrderID)
		return app.Publish(ctx, PaymentReceived{OrderID: e.OrderID, Amount: e.Amount})
	})
	if err != nil {
		return err
	}

	// Bus -> mediator.
	if err := DispatchFromBus[PaymentReceived](app, m); err != nil {
		return err
	}
	paid := make(chan string, 1)
	err = mediator.SubscribeFunc(m, func(ctx context.Context, p PaymentReceived) error {
		// The mediator handler runs inside the bus handler: the incoming
		// message's envelope is in its context.
		env, _ := router.EnvelopeFrom(ctx)
		mu.Lock()
		causedByPlaced := env.CausationID != "" && env.CausationID == placedMsgID[p.OrderID]
		mu.Unlock()
		fmt.Fprintf(out, "mediator: order %s paid %d (from bus message %s, caused by its orders.placed message: %t)\n",
			p.OrderID, p.Amount, env.Type, causedByPlaced)
		paid <- p.OrderID
		return nil
	})
	if err != nil {
		return err
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runErr := make(chan error, 1)
	go func() { runErr <- app.Run(runCtx) }()
	select {
	case <-app.Running():
	case err := <-runErr:
		return fmt.Errorf("app stopped before running: %w", err)
	}

	for i, amount := range []int{30, 12} {
		id := fmt.Sprintf("o-%d", i+1)
		if err := mediator.Execute(ctx, m, PlaceOrder{OrderID: id, Amount: amount}); err != nil {
			return err
		}
		select {
		case got := <-paid:
			if got != id {
				return fmt.Errorf("order %s paid, want %s", got, id)
			}
		case <-ctx.Done():
			return fmt.Errorf("order %s was not paid: %w", id, ctx.Err())
		}
	}

	// An invalid command never reaches its handler, nor the bus.
	err = mediator.Execute(ctx, m, PlaceOrder{OrderID: "o-3"})
	var verr *mediator.ValidationError
	if !errors.As(err, &verr) {
		return fmt.Errorf("invalid order: got %v, want a validation error", err)
	}
	fmt.Fprintf(out, "mediator: rejected: %v\n", err)

	stop()
	if err := <-runErr; err != nil {
		return err
	}
	fmt.Fprintln(out, "mediator-bridge done")
	return nil
}
