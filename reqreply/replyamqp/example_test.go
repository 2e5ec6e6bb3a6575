package replyamqp_test

import (
	"context"
	"log"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"

	"github.com/hexeract/hexeract"
	adamqp "github.com/hexeract/hexeract/adapters/amqp"
	"github.com/hexeract/hexeract/reqreply"
	"github.com/hexeract/hexeract/reqreply/replyamqp"
)

type GetPrice struct {
	SKU string `json:"sku"`
}

func (GetPrice) MessageType() string { return "catalog.get_price" }

type Price struct {
	Cents int `json:"cents"`
}

func (Price) MessageType() string { return "catalog.price" }

// A service that both answers and sends requests over RabbitMQ.
func Example() {
	url := "amqp://guest:guest@127.0.0.1:5672/"
	cfg := adamqp.Config{URL: url, Group: "catalog"}

	// Requests: durable queues, with an expiration taken from each request's deadline.
	wc := cfg.WatermillConfig()
	wc.Marshaler = replyamqp.Marshaler(wamqp.DefaultMarshaler{})
	pub, err := wamqp.NewPublisher(wc, watermill.NopLogger{})
	if err != nil {
		log.Fatal(err)
	}
	sub, err := adamqp.NewSubscriber(cfg, nil)
	if err != nil {
		log.Fatal(err)
	}
	app, err := hexeract.New(hexeract.WithPubSub(pub, sub))
	if err != nil {
		log.Fatal(err)
	}

	// Replies: an exclusive auto-delete queue per instance, on the default exchange.
	replyPub, err := replyamqp.NewReplyPublisher(url, nil)
	if err != nil {
		log.Fatal(err)
	}
	replies, err := replyamqp.NewReplySubscriber(url, nil)
	if err != nil {
		log.Fatal(err)
	}
	err = reqreply.Handle(app, func(ctx context.Context, q GetPrice) (Price, error) {
		return Price{Cents: 1299}, nil
	}, reqreply.WithReplyPublisher(replyPub))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := reqreply.NewClient(app, reqreply.WithReplySubscriber(replies)); err != nil {
		log.Fatal(err)
	}
	// ... app.Run(ctx), then reqreply.Request[GetPrice, Price](ctx, app, GetPrice{SKU: "A-1"})
}
