package sqs_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/adapters/sqs"
)

// Example publishes a message to a topic and receives it, on the SQS-compatible
// server of the tests (the fauxqs emulator, which TestMain starts when it is not
// running; see internal/testenv.SQSURL).
func Example() {
	url := os.Getenv("HEXERACT_TEST_SQS")
	if url == "" {
		url = "sqs://test:test@us-east-1/?endpoint=http://127.0.0.1:4566"
	}
	ctx := context.Background()
	pub, sub, err := sqs.Open(ctx, url, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer pub.Close()
	defer sub.Close()

	topic := "example.greetings." + watermill.NewShortUUID() // queue example-greetings-...
	msgs, err := sub.Subscribe(ctx, topic)
	if err != nil {
		log.Fatal(err)
	}

	msg := message.NewMessage(watermill.NewUUID(), []byte(`{"text":"hello"}`))
	msg.Metadata.Set("ce_type", "greetings.sent")
	if err := pub.Publish(topic, msg); err != nil {
		log.Fatal(err)
	}

	got := <-msgs
	fmt.Println(string(got.Payload), got.Metadata.Get("ce_type"), got.UUID == msg.UUID)
	got.Ack() // deletes it from the queue
	// Output: {"text":"hello"} greetings.sent true
}

// ExampleParseURL shows the configuration a URL gives.
func ExampleParseURL() {
	cfg, err := sqs.ParseURL("sqs://eu-west-1/?endpoint=http://127.0.0.1:4566&visibility=2m&pollers=4")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Region, cfg.Endpoint, cfg.WaitTime, cfg.VisibilityTimeout, cfg.MaxMessages, cfg.Pollers)

	_, err = sqs.ParseURL("sqs://KEY:SECRET@eu-west-1/?wait=1m")
	fmt.Println(err)
	// Output:
	// eu-west-1 http://127.0.0.1:4566 20s 2m0s 10 4
	// sqs: invalid config: WaitTime 1m0s: must be whole seconds from 0s to 20s (or sqs.NoWait)
}
