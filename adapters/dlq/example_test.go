package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/adapters/dlq"
	"github.com/hexeract/hexeract/middleware"
)

// Count, list and move the dead letters of orders.dlq on Redis Streams.
func ExampleOpen() {
	ctx := context.Background()
	b, err := dlq.Open(ctx, "redis://127.0.0.1:6379/0")
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	n, err := b.Count(ctx, "orders.dlq", dlq.Query{})
	var unknown *dlq.UnknownError
	if errors.As(err, &unknown) {
		log.Fatalf("no such topic; the dead-letter topics are %v", unknown.Existing)
	}
	fmt.Println(n, "dead letters")
	err = b.List(ctx, "orders.dlq", dlq.Query{Limit: 10}, func(m *message.Message) error {
		f, _ := middleware.FaultOf(m.Metadata)
		fmt.Println(m.UUID, f.Topic, f.Error)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	res, err := b.Move(ctx, "orders.dlq", dlq.MoveOptions{})
	if errors.Is(err, dlq.ErrNoSubscriber) {
		log.Fatal("nothing moved: start the consumer first")
	}
	fmt.Println(res.Total, "moved")
}
