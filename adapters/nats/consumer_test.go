package nats_test

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	nc "github.com/nats-io/nats.go"

	"github.com/hexeract/hexeract/adapters/internal/suite"
	"github.com/hexeract/hexeract/adapters/nats"
	"github.com/hexeract/hexeract/internal/testenv"
)

// TestExistingConsumerTakesNewSettings checks that ack_wait, max_ack_pending
// and max_deliver reach a group's durable consumer that an earlier run
// created with other values. They used to be applied only when the consumer
// was created, so changing them in the URL of a deployed service had no
// effect on JetStream (which kept redelivering after the old ack_wait).
func TestExistingConsumerTakesNewSettings(t *testing.T) {
	suite.BrokerInUse(t)
	url := testenv.NATSURL(t)
	topic := "hexeract.test.consumer." + testenv.Suffix()
	group := "g" + watermill.NewShortUUID()

	initialize := func(rawURL string) {
		t.Helper()
		cfg, err := nats.ParseURL(rawURL)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := nats.NewSubscriber(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		if err := sub.SubscribeInitialize(topic); err != nil {
			t.Fatal(err)
		}
	}
	initialize(url + "?group=" + group)
	initialize(url + "?group=" + group + "&ack_wait=3s&max_ack_pending=7&max_deliver=5")

	conn, err := nc.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	js, err := conn.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = js.DeleteStream(nats.StreamName(topic)) })
	info, err := js.ConsumerInfo(nats.StreamName(topic), nats.ConsumerName(group))
	if err != nil {
		t.Fatal(err)
	}
	if c := info.Config; c.AckWait != 3*time.Second || c.MaxAckPending != 7 || c.MaxDeliver != 5 {
		t.Fatalf("consumer has ack_wait=%s max_ack_pending=%d max_deliver=%d, want 3s, 7, 5", c.AckWait, c.MaxAckPending, c.MaxDeliver)
	}

	// Back to the defaults: unlimited deliveries again.
	initialize(url + "?group=" + group)
	info, err = js.ConsumerInfo(nats.StreamName(topic), nats.ConsumerName(group))
	if err != nil {
		t.Fatal(err)
	}
	if c := info.Config; c.AckWait != nats.DefaultAckWait || c.MaxAckPending != nats.DefaultMaxAckPending || c.MaxDeliver != -1 {
		t.Fatalf("consumer has ack_wait=%s max_ack_pending=%d max_deliver=%d, want the defaults", c.AckWait, c.MaxAckPending, c.MaxDeliver)
	}
}
