package amqp_test

import (
	"fmt"

	"github.com/hexeract/hexeract/adapters/amqp"
)

// ParseURL reads Hexeract's parameters from the URL; each consumer group
// gets a durable queue per topic.
func ExampleParseURL() {
	cfg, err := amqp.ParseURL("amqp://guest:secret@127.0.0.1:5672/?group=billing&prefetch=16")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.Group, cfg.Prefetch, !cfg.NoConfirm)
	fmt.Println(amqp.QueueName("orders.placed", cfg.Group))
	// Output:
	// billing 16 true
	// orders.placed_billing
}
