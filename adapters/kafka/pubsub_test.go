package kafka_test

import (
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hexeract/hexeract/adapters/internal/suite"
	"github.com/hexeract/hexeract/adapters/kafka"
	"github.com/hexeract/hexeract/internal/testenv"
)

// fastGroups shortens the consumer-group timings so that the many group
// joins of the suite take a fraction of a second each instead of several.
// Everything else is Hexeract's production configuration.
func fastGroups(c *sarama.Config) {
	c.Consumer.Group.Heartbeat.Interval = 200 * time.Millisecond
	c.Consumer.Group.Session.Timeout = 6 * time.Second
	c.Consumer.Group.Rebalance.Timeout = 2 * time.Second
	c.Consumer.Group.Rebalance.Retry.Backoff = 100 * time.Millisecond
	c.Metadata.Retry.Backoff = 100 * time.Millisecond
}

// TestUniversalPubSub runs Watermill's universal Pub/Sub suite against the
// Kafka transport as Hexeract configures it (acks from all replicas, key
// from ce_partitionkey, groups starting at the oldest offset) on an
// in-process kfake cluster with several partitions per topic. Order is only
// guaranteed per partition, so the order flags are false. Each constructor
// call without a group gets a new group, which starts at the oldest offset:
// that is what NewSubscriberReceivesOldMessages checks.
func TestUniversalPubSub(t *testing.T) {
	brokers := testenv.Kafka(t, kfake.DefaultNumPartitions(4))
	newPubSub := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		pub, sub, err := kafka.New(kafka.Config{Brokers: brokers, Group: group, Tune: fastGroups}, watermill.NopLogger{})
		if err != nil {
			t.Fatalf("kafka.New: %v", err)
		}
		return pub, sub
	}
	tests.TestPubSub(t, suite.Fast(tests.Features{
		ConsumerGroups:                   true,
		ExactlyOnceDelivery:              false,
		GuaranteedOrder:                  false,
		Persistent:                       true,
		NewSubscriberReceivesOldMessages: true,
	}),
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			return newPubSub(t, "g"+watermill.NewShortUUID())
		},
		newPubSub,
	)
}
