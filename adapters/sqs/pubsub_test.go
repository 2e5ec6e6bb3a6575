package sqs_test

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	hsqs "github.com/hexeract/hexeract/adapters/sqs"
)

// newPubSub builds a Publisher and Subscriber on the test server, configured
// as Hexeract configures them from a URL.
func newPubSub(t *testing.T, cfg hsqs.Config) (message.Publisher, message.Subscriber) {
	t.Helper()
	ctx := context.Background()
	pub, err := hsqs.NewPublisher(ctx, cfg, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := hsqs.NewSubscriber(ctx, cfg, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	return pub, sub
}

// TestPubSub runs Watermill's universal Pub/Sub test suite against the
// adapter on a real SQS-compatible server (fauxqs).
//
// Features, set honestly:
//   - ConsumerGroups: false. Subscribers of a topic share one queue and
//     compete for its messages; SQS has no consumer groups.
//   - ExactlyOnceDelivery: false. SQS is at-least-once.
//   - GuaranteedOrder: false. Standard queues do not keep order.
//   - Persistent: true. Messages stay in the queue across subscriber instances.
//   - NewSubscriberReceivesOldMessages: false. Consumed messages are deleted.
//   - RestartServiceCommand: none, so TestReconnect is skipped by the suite.
func TestPubSub(t *testing.T) {
	cfg := testConfig(t)
	tests.TestPubSub(t, tests.Features{
		ConsumerGroups:                   false,
		ExactlyOnceDelivery:              false,
		GuaranteedOrder:                  false,
		Persistent:                       true,
		NewSubscriberReceivesOldMessages: false,
	}, func(t *testing.T) (message.Publisher, message.Subscriber) {
		return newPubSub(t, cfg)
	}, nil)
}
