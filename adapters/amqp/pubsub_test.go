package amqp_test

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/hexeract/hexeract/adapters/amqp"
	"github.com/hexeract/hexeract/adapters/internal/suite"
	"github.com/hexeract/hexeract/internal/testenv"
)

func newPubSub(t *testing.T, group string) (message.Publisher, message.Subscriber) {
	t.Helper()
	pub, sub, err := amqp.New(amqp.Config{URL: testenv.AMQPURL(t), Group: group}, watermill.NopLogger{})
	if err != nil {
		t.Fatalf("amqp.New: %v", err)
	}
	return pub, sub
}

// TestUniversalPubSub runs Watermill's universal Pub/Sub suite against the
// RabbitMQ transport exactly as Hexeract configures it (publisher confirms,
// durable queues per group, prefetch 64). Order holds for a single consumer:
// RabbitMQ delivers a queue in order and a nacked message goes back to its
// place. The broker-restart test of the suite needs a restart command and is
// replaced by TestBrokerRestart.
func TestUniversalPubSub(t *testing.T) {
	suite.BrokerInUse(t)
	tests.TestPubSub(t, suite.Fast(tests.Features{
		ConsumerGroups:                      true,
		ExactlyOnceDelivery:                 false,
		GuaranteedOrder:                     true,
		GuaranteedOrderWithSingleSubscriber: true,
		Persistent:                          true,
	}),
		func(t *testing.T) (message.Publisher, message.Subscriber) { return newPubSub(t, "universal") },
		newPubSub,
	)
}
