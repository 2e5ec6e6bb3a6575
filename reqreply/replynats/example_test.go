package replynats_test

import (
	"context"
	"log"

	"github.com/hexeract/hexeract"
	adnats "github.com/hexeract/hexeract/adapters/nats"
	"github.com/hexeract/hexeract/reqreply"
	"github.com/hexeract/hexeract/reqreply/replynats"
)

type GetPrice struct {
	SKU string `json:"sku"`
}

func (GetPrice) MessageType() string { return "catalog.get_price" }

type Price struct {
	Cents int `json:"cents"`
}

func (Price) MessageType() string { return "catalog.price" }

// A service that both answers and sends requests: requests on JetStream,
// replies on core NATS.
func Example() {
	url := "nats://127.0.0.1:4222"
	pub, sub, err := adnats.New(adnats.Config{URL: url, Group: "catalog"}, nil)
	if err != nil {
		log.Fatal(err)
	}
	app, err := hexeract.New(hexeract.WithPubSub(pub, sub))
	if err != nil {
		log.Fatal(err)
	}
	replyPub, err := replynats.NewReplyPublisher(url, nil)
	if err != nil {
		log.Fatal(err)
	}
	replies, err := replynats.NewReplySubscriber(url, nil)
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
