package nats_test

import (
	"fmt"

	"github.com/hexeract/hexeract/adapters/nats"
)

// Topics are subjects; stream and consumer names are derived from them.
func ExampleStreamName() {
	fmt.Println(nats.StreamName("orders_placed"))
	fmt.Println(nats.StreamName("orders.placed"))
	fmt.Println(nats.ConsumerName("billing"))
	// Output:
	// orders_placed
	// orders_placed_456a4dba
	// billing
}
