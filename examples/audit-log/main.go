// Command audit-log shows a third-party-style plugin (package audit): an
// audit log of every message the App's handlers take, installed with one
// option. It runs two typed handlers on the in-memory transport by default,
// or on a broker with -transport URL (or $HEXERACT_TRANSPORT), and prints
// the audit log, which the App flushes when it closes:
//
//	go run ./examples/audit-log
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters"
	"github.com/hexeract/hexeract/examples/audit-log/audit"
	"github.com/hexeract/hexeract/router"
)

// OrderPlaced is handled successfully.
type OrderPlaced struct {
	OrderID string `json:"order_id"`
}

// MessageType returns the stable wire name of the event.
func (OrderPlaced) MessageType() string { return "auditdemo.orders.placed" }

// InvoiceIssued is refused for good when its amount is negative.
type InvoiceIssued struct {
	InvoiceID string `json:"invoice_id"`
	Amount    int    `json:"amount"`
}

// MessageType returns the stable wire name of the event.
func (InvoiceIssued) MessageType() string { return "auditdemo.invoices.issued" }

func main() {
	transportURL := flag.String("transport", os.Getenv(adapters.EnvTransport),
		"transport URL (default $"+adapters.EnvTransport+", else mem:// in memory)")
	flag.Parse()
	if _, _, err := run(context.Background(), *transportURL, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// run publishes three orders and two invoices (one with a negative amount,
// which its handler refuses for good), closes the App and prints the audit
// log to out. It returns the records and the outcome each handled message
// should have, by message id.
func run(ctx context.Context, transportURL string, out io.Writer) ([]audit.Record, map[string]string, error) {
	if transportURL == "" {
		transportURL = "mem://"
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	transport, err := adapters.Open(ctx, transportURL)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err := transport.Close(); err != nil {
			log.Printf("close the transport: %v", err)
		}
	}()

	// The plugin: one option. An hour between flushes, so what is printed
	// below is what App.Close flushed.
	auditLog := audit.New(audit.Config{FlushInterval: time.Hour})
	app, err := hexeract.New(
		hexeract.WithPubSub(transport.Publisher, transport.Subscriber),
		hexeract.WithLogger(logger),
		hexeract.WithSource("/audit-demo"),
		hexeract.WithPlugins(auditLog),
	)
	if err != nil {
		return nil, nil, err
	}
	// Closed below once the handlers are done; this closes it on the early returns.
	defer func() { _ = app.Close() }()

	var mu sync.Mutex
	want := map[string]string{} // message id -> expected outcome
	var handled sync.WaitGroup
	seen := func(ctx context.Context, outcome string) {
		env, _ := router.EnvelopeFrom(ctx)
		mu.Lock()
		want[env.ID] = outcome
		mu.Unlock()
		handled.Done()
	}
	err = hexeract.HandleFunc(app, func(ctx context.Context, ev OrderPlaced) error {
		seen(ctx, audit.OutcomeOK)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	err = hexeract.HandleFunc(app, func(ctx context.Context, ev InvoiceIssued) error {
		if ev.Amount < 0 {
			seen(ctx, audit.OutcomeError)
			return router.Permanent(fmt.Errorf("invoice %s: negative amount %d", ev.InvoiceID, ev.Amount))
		}
		seen(ctx, audit.OutcomeOK)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintln(out, "plugins:", app.Plugins())

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- app.Run(runCtx) }()
	select {
	case <-app.Running():
	case err := <-runErr:
		return nil, nil, fmt.Errorf("run: %w", err)
	}

	handled.Add(5)
	err = app.Publish(ctx,
		OrderPlaced{OrderID: "o-1"}, OrderPlaced{OrderID: "o-2"}, OrderPlaced{OrderID: "o-3"},
		InvoiceIssued{InvoiceID: "i-1", Amount: 120}, InvoiceIssued{InvoiceID: "i-2", Amount: -5},
	)
	if err != nil {
		return nil, nil, err
	}
	waited := make(chan struct{})
	go func() { handled.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(30 * time.Second):
		return nil, nil, errors.New("the handlers did not take the five messages within 30s")
	}
	fmt.Fprintln(out, "records before App.Close:", len(auditLog.Records()))

	// Close stops the router (the handlers in flight finish) and then
	// closes the plugin's Component, which flushes the rest.
	if err := app.Close(); err != nil {
		return nil, nil, err
	}
	if err := <-runErr; err != nil {
		return nil, nil, fmt.Errorf("run: %w", err)
	}
	records := auditLog.Records()
	fmt.Fprintln(out, "audit log:")
	for _, r := range records {
		line := fmt.Sprintf("  %-26s %-26s %s %-5s %s", r.Topic, r.Handler, r.MessageID, r.Outcome, r.Duration.Round(time.Microsecond))
		if r.Error != "" {
			line += " " + r.Error
		}
		fmt.Fprintln(out, line)
	}
	mu.Lock()
	defer mu.Unlock()
	return records, want, nil
}
