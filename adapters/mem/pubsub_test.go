package mem_test

import (
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/hexeract/hexeract/adapters/internal/suite"
	"github.com/hexeract/hexeract/adapters/mem"
)

// TestPubSub runs Watermill's universal Pub/Sub suite. Every constructor
// call of one test shares one broker, as the processes of one deployment
// share one RabbitMQ.
func TestPubSub(t *testing.T) {
	var mu sync.Mutex
	brokers := map[string]*mem.Broker{}
	brokerFor := func(t *testing.T) *mem.Broker {
		mu.Lock()
		defer mu.Unlock()
		b := brokers[t.Name()]
		if b == nil {
			b = mem.New(mem.Config{})
			brokers[t.Name()] = b
		}
		return b
	}
	tests.TestPubSub(t, suite.Fast(tests.Features{
		ConsumerGroups:                      true,
		ExactlyOnceDelivery:                 false,
		GuaranteedOrder:                     true,
		GuaranteedOrderWithSingleSubscriber: true,
		Persistent:                          true,
		NewSubscriberReceivesOldMessages:    false,
	}),
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			b := brokerFor(t)
			// One group per test, as RabbitMQ's default queue per topic is
			// shared by every subscriber of one deployment.
			return b.Publisher(), b.Subscriber("shared")
		},
		func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
			b := brokerFor(t)
			return b.Publisher(), b.Subscriber(group)
		},
	)
}
