package gochannel_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters/gochannel"
)

type PriceChanged struct {
	SKU   string `json:"sku"`
	Cents int    `json:"cents"`
}

func (PriceChanged) MessageType() string { return "catalog.price_changed" }

// Example gives an App an in-memory transport whose Publish returns only
// once the handler acknowledged the message, which makes tests that publish
// and then assert need no waiting.
func Example() {
	ps := gochannel.New(gochannel.Config{BlockPublishUntilAck: true}, nil)
	app, err := hexeract.New(hexeract.WithPubSub(ps, ps), hexeract.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		panic(err)
	}
	defer app.Close()
	var last PriceChanged
	_ = hexeract.HandleFunc(app, func(ctx context.Context, p PriceChanged) error {
		last = p
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = app.Run(ctx) }()
	<-app.Running()

	_ = app.Publish(ctx, PriceChanged{SKU: "tea-01", Cents: 450})
	fmt.Println(last.SKU, last.Cents) // handled before Publish returned
	// Output: tea-01 450
}
