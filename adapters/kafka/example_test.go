package kafka_test

import (
	"fmt"

	"github.com/hexeract/hexeract/adapters/kafka"
)

// A Kafka URL lists the seed brokers.
func ExampleParseURL() {
	cfg, err := kafka.ParseURL("kafka://broker-1:9092,broker-2/?group=billing&acks=all")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.Brokers, cfg.Group)
	// Output:
	// [broker-1:9092 broker-2:9092] billing
}
