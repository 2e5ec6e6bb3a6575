package nats_test

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/hexeract/hexeract/adapters/internal/suite"
	"github.com/hexeract/hexeract/adapters/nats"
	"github.com/hexeract/hexeract/internal/testenv"
)

func newPubSub(t *testing.T, group string) (message.Publisher, message.Subscriber) {
	t.Helper()
	pub, sub, err := nats.New(nats.Config{
		URL:   testenv.NATSURL(t),
		Group: group,
		// The suite's TestNoAck and TestResendOnError wait for a redelivery
		// of an unacknowledged message; keep that wait short.
		AckWait: 5 * time.Second,
	}, watermill.NopLogger{})
	if err != nil {
		t.Fatalf("nats.New: %v", err)
	}
	return pub, sub
}

// TestUniversalPubSub runs Watermill's universal Pub/Sub suite against the
// NATS JetStream transport as Hexeract configures it (stream per topic,
// durable consumer per group, manual explicit acks). Every constructor call
// without a group gets a new group, which starts at the beginning of the
// stream: that is what NewSubscriberReceivesOldMessages checks. The
// broker-restart test of the suite needs a restart command and is replaced
// by TestBrokerRestart.
func TestUniversalPubSub(t *testing.T) {
	suite.BrokerInUse(t)
	tests.TestPubSub(t, suite.Fast(tests.Features{
		ConsumerGroups:                      true,
		ExactlyOnceDelivery:                 false,
		GuaranteedOrder:                     true,
		GuaranteedOrderWithSingleSubscriber: true,
		Persistent:                          true,
		NewSubscriberReceivesOldMessages:    true,
	}),
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			return newPubSub(t, "g"+watermill.NewShortUUID())
		},
		newPubSub,
	)
}
