// Command reqreply shows typed request/reply over Hexeract's bus: a
// checkout service asks an inventory service to reserve stock and gets one
// of two answers, a typed remote error, or a timeout.
//
// It runs on the in-memory transport by default; give a transport URL to
// run the two services over a broker. Nothing is configured for the
// replies: request/reply derives their transport from the App's (an
// exclusive, auto-deleted reply queue on RabbitMQ, core NATS on NATS, a
// per-instance reply topic on Kafka and in memory).
//
//	go run ./examples/reqreply
//	go run ./examples/reqreply amqp://guest:guest@127.0.0.1:5672/
//	go run ./examples/reqreply nats://127.0.0.1:4222
//	go run ./examples/reqreply kafka://127.0.0.1:9092
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters"
	"github.com/hexeract/hexeract/reqreply"
	"github.com/hexeract/hexeract/router"
)

// ReserveStock asks the inventory service to hold items for an order.
type ReserveStock struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

// MessageType returns the wire name of the request.
func (ReserveStock) MessageType() string { return "inventory.reserve_stock" }

// StockReserved is the answer when the items are held.
type StockReserved struct {
	ReservationID string `json:"reservation_id"`
}

// MessageType returns the wire name of the answer.
func (StockReserved) MessageType() string { return "inventory.stock_reserved" }

// StockShort is the answer when there are not enough items.
type StockShort struct {
	Available int `json:"available"`
}

// MessageType returns the wire name of the answer.
func (StockShort) MessageType() string { return "inventory.stock_short" }

// ErrUnknownSKU is the remote error for a product the inventory does not know.
var ErrUnknownSKU = reqreply.NewError("unknown_sku", "no such product")

func main() {
	transport := "mem://"
	if len(os.Args) > 1 {
		transport = os.Args[1]
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout, transport); err != nil {
		log.Fatal(err)
	}
}

// services holds the two services and the transports they were given.
type services struct {
	inventory, checkout *hexeract.App
	transports          []*adapters.Transport
}

// close closes the Apps (the checkout's request/reply client with its
// reply queue or subscription), then the transports they were given.
func (s *services) close() {
	for _, app := range []*hexeract.App{s.checkout, s.inventory} {
		if app != nil {
			_ = app.Close()
		}
	}
	for _, t := range s.transports {
		_ = t.Close()
	}
}

// setup opens the transport and builds the two Apps. Nothing is
// configured for the replies: request/reply derives their transport from
// the App's (an exclusive reply queue on RabbitMQ, core NATS on NATS, a
// per-instance reply topic elsewhere).
func setup(ctx context.Context, rawURL string) (*services, error) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	s := &services{}
	open := func(group string) (*adapters.Transport, error) {
		t, err := adapters.Open(ctx, rawURL, adapters.WithGroup(group))
		if err != nil {
			return nil, err
		}
		s.transports = append(s.transports, t)
		return t, nil
	}
	inv, err := open("inventory")
	if err != nil {
		return nil, err
	}
	checkout := inv // the in-memory transport only works within one Pub/Sub
	if inv.Scheme != "mem" {
		if checkout, err = open("checkout"); err != nil {
			s.close()
			return nil, err
		}
	}
	if s.inventory, err = hexeract.New(hexeract.WithPubSub(inv.Publisher, inv.Subscriber), hexeract.WithSource("/inventory"), hexeract.WithLogger(logger)); err != nil {
		s.close()
		return nil, err
	}
	if s.checkout, err = hexeract.New(hexeract.WithPubSub(checkout.Publisher, checkout.Subscriber), hexeract.WithSource("/checkout"), hexeract.WithLogger(logger)); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func run(ctx context.Context, out io.Writer, transport string) error {
	s, err := setup(ctx, transport)
	if err != nil {
		return err
	}
	defer s.close()

	// The inventory service answers ReserveStock with one of two types.
	stock := map[string]int{"book": 10, "lamp": 3}
	err = reqreply.Handle(s.inventory, func(ctx context.Context, r ReserveStock) (router.Message, error) {
		if r.SKU == "slow" {
			time.Sleep(300 * time.Millisecond) // longer than the caller waits
		}
		available, ok := stock[r.SKU]
		switch {
		case !ok:
			return nil, hexeract.Permanent(fmt.Errorf("sku %q: %w", r.SKU, ErrUnknownSKU))
		case r.Qty > available:
			return StockShort{Available: available}, nil
		}
		return StockReserved{ReservationID: "res-" + r.SKU}, nil
	})
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.inventory.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			log.Printf("inventory service: %v", err)
		}
	}()
	select {
	case <-s.inventory.Running():
	case err := <-done:
		return err
	}

	// The checkout service asks; its first request creates its client (one
	// reply subscription for all its requests), which the App owns.
	for _, reg := range []func(*router.Registry) (string, error){router.Register[StockReserved], router.Register[StockShort]} {
		if _, err := reg(s.checkout.Registry()); err != nil {
			return err
		}
	}
	for _, req := range []ReserveStock{{SKU: "book", Qty: 2}, {SKU: "lamp", Qty: 5}, {SKU: "chair", Qty: 1}, {SKU: "slow", Qty: 1}} {
		timeout := 10 * time.Second
		if req.SKU == "slow" {
			timeout = 100 * time.Millisecond
		}
		reply, err := reqreply.RequestAny(ctx, s.checkout, req, reqreply.Timeout(timeout))
		var remote *reqreply.RemoteError
		switch {
		case errors.Is(err, reqreply.ErrTimeout):
			fmt.Fprintf(out, "%s: no answer within %s\n", req.SKU, timeout)
		case errors.As(err, &remote):
			fmt.Fprintf(out, "%s: refused (%s, permanent: %t)\n", req.SKU, remote.Code, remote.Permanent())
		case err != nil:
			return err
		default:
			switch r := reply.(type) {
			case StockReserved:
				fmt.Fprintf(out, "%s: reserved as %s\n", req.SKU, r.ReservationID)
			case StockShort:
				fmt.Fprintf(out, "%s: only %d available\n", req.SKU, r.Available)
			}
		}
	}
	// The slow answer still arrives; nobody waits for it any more.
	deadline := time.Now().Add(10 * time.Second)
	for reqreply.StatsFor(s.checkout).LateReplies == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	st := reqreply.StatsFor(s.checkout)
	fmt.Fprintf(out, "checkout: %d requests, %d answers, %d timeout, %d late reply dropped\n", st.Requests, st.Replies, st.Timeouts, st.LateReplies)
	return nil
}
