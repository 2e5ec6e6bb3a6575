package reqreply_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/reqreply"
	"github.com/hexeract/hexeract/router"
)

type GetPrice struct {
	SKU string `json:"sku"`
}

func (GetPrice) MessageType() string { return "catalog.get_price" }

type Price struct {
	SKU   string `json:"sku"`
	Cents int    `json:"cents"`
}

func (Price) MessageType() string { return "catalog.price" }

// runExampleApp runs app in the background and returns a function that stops it.
func runExampleApp(app *hexeract.App) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := app.Run(ctx); err != nil {
			log.Print(err)
		}
	}()
	<-app.Running()
	return func() { cancel(); <-done; _ = app.Close() }
}

func ExampleRequest() {
	app, err := hexeract.New() // in-memory transport; the same code runs on RabbitMQ, Kafka, NATS...
	if err != nil {
		log.Fatal(err)
	}
	err = reqreply.Handle(app, func(ctx context.Context, q GetPrice) (Price, error) {
		return Price{SKU: q.SKU, Cents: 1299}, nil
	})
	if err != nil {
		log.Fatal(err)
	}
	defer runExampleApp(app)()

	price, err := reqreply.Request[GetPrice, Price](context.Background(), app, GetPrice{SKU: "A-1"}, reqreply.Timeout(5*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s costs %d cents\n", price.SKU, price.Cents)
	// Output: A-1 costs 1299 cents
}

var ErrUnknownSKU = reqreply.NewError("unknown_sku", "no such product")

func ExampleNewError() {
	app, err := hexeract.New()
	if err != nil {
		log.Fatal(err)
	}
	err = reqreply.Handle(app, func(ctx context.Context, q GetPrice) (Price, error) {
		// Permanent: asking again will not help.
		return Price{}, hexeract.Permanent(fmt.Errorf("sku %s: %w", q.SKU, ErrUnknownSKU))
	})
	if err != nil {
		log.Fatal(err)
	}
	defer runExampleApp(app)()

	_, err = reqreply.Request[GetPrice, Price](context.Background(), app, GetPrice{SKU: "Z-9"}, reqreply.Timeout(5*time.Second))
	var remote *reqreply.RemoteError
	switch {
	case errors.Is(err, ErrUnknownSKU):
		errors.As(err, &remote)
		fmt.Println("unknown sku; code:", remote.Code, "permanent:", hexeract.IsPermanent(err))
	case errors.Is(err, reqreply.ErrTimeout):
		fmt.Println("no answer in time")
	}
	// Output: unknown sku; code: unknown_sku permanent: true
}

type ReserveStock struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

func (ReserveStock) MessageType() string { return "stock.reserve" }

type StockReserved struct {
	ReservationID string `json:"reservation_id"`
}

func (StockReserved) MessageType() string { return "stock.reserved" }

type StockShort struct {
	Available int `json:"available"`
}

func (StockShort) MessageType() string { return "stock.short" }

func ExampleRequestAny() {
	app, err := hexeract.New()
	if err != nil {
		log.Fatal(err)
	}
	// The responder answers with one of two message types.
	err = reqreply.Handle(app, func(ctx context.Context, r ReserveStock) (router.Message, error) {
		if r.Qty > 5 {
			return StockShort{Available: 5}, nil
		}
		return StockReserved{ReservationID: "r-1"}, nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// The caller registers the types it may get back.
	_, _ = router.Register[StockReserved](app.Registry())
	_, _ = router.Register[StockShort](app.Registry())
	defer runExampleApp(app)()

	for _, qty := range []int{2, 8} {
		reply, err := reqreply.RequestAny(context.Background(), app, ReserveStock{SKU: "A-1", Qty: qty}, reqreply.Timeout(5*time.Second))
		if err != nil {
			log.Fatal(err)
		}
		switch r := reply.(type) {
		case StockReserved:
			fmt.Println("reserved:", r.ReservationID)
		case StockShort:
			fmt.Println("short, available:", r.Available)
		}
	}
	// Output:
	// reserved: r-1
	// short, available: 5
}
