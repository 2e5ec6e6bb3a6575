package nats_test

import (
	"testing"
	"time"

	nc "github.com/nats-io/nats.go"

	"github.com/hexeract/hexeract/adapters/internal/suite"
	"github.com/hexeract/hexeract/adapters/nats"
	"github.com/hexeract/hexeract/internal/testenv"
)

// TestPoisonHeaders writes messages with repeated header values straight
// to the topic's stream with nats.go, interleaved with plain ones: every
// message is handled once with the first value of each repeated header,
// and the group's consumer ends with nothing pending and no redelivery.
func TestPoisonHeaders(t *testing.T) {
	suite.BrokerInUse(t)
	url := testenv.NATSURL(t)
	topic := "hexeract.poison." + testenv.Suffix()
	cfg := nats.Config{URL: url, Group: "poison", AckWait: 2 * time.Second}
	pub, sub, err := nats.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	defer sub.Close()
	conn, err := nc.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	js, err := conn.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = js.DeleteStream(nats.StreamName(topic))
		_ = js.DeleteStream(nats.StreamName(topic + ".dlq"))
	})

	write := func(t *testing.T) {
		msgs := []struct {
			body string
			hdr  nc.Header
		}{
			{"good-1", nc.Header{"ce_type": {suite.GoodType}}},
			{"good-twice", nc.Header{"ce_type": {"first.type", "second.type"}, "_watermill_message_uuid": {"id-twice"}}},
			{"good-2", nc.Header{"ce_type": {suite.GoodType}}},
			{"good-many", nc.Header{"x-tag": {"a", "b", "c"}, "ce_id": {"evt-many", "evt-other"}}},
			{"good-3", nil},
		}
		for _, m := range msgs {
			if _, err := js.PublishMsg(&nc.Msg{Subject: topic, Data: []byte(m.body), Header: m.hdr}); err != nil {
				t.Fatal(err)
			}
		}
	}
	suite.Poison(t, pub, sub, sub, topic, write, suite.PoisonWant{
		Good: map[string]map[string]string{
			"good-1":     {"ce_type": suite.GoodType},
			"good-twice": {"ce_type": "first.type"},
			"good-2":     nil,
			"good-many":  {"x-tag": "a", "ce_id": "evt-many"},
			"good-3":     nil,
		},
	})
	info, err := js.ConsumerInfo(nats.StreamName(topic), nats.ConsumerName("poison"))
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 || info.NumRedelivered != 0 || info.Delivered.Consumer != 5 {
		t.Fatalf("consumer: %d delivered, %d ack pending, %d redelivered; want 5, 0, 0", info.Delivered.Consumer, info.NumAckPending, info.NumRedelivered)
	}
}
