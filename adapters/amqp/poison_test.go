package amqp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/hexeract/hexeract/adapters/amqp"
	"github.com/hexeract/hexeract/adapters/internal/suite"
	"github.com/hexeract/hexeract/internal/testenv"
)

// TestPoisonHeaders writes messages with headers Hexeract does not use as
// text (tables flat and nested, arrays, decimals, timestamps, byte arrays)
// straight to the topic's exchange with amqp091-go, interleaved with plain
// ones, and one message that reaches the Hexeract queue through a real
// RabbitMQ dead-letter exchange (so RabbitMQ adds x-death): every message
// is handled once, with its values in their text form, none loops.
func TestPoisonHeaders(t *testing.T) {
	rawURL := testenv.AMQPURL(t)
	suite.BrokerInUse(t)
	topic := "hexeract.poison." + testenv.Suffix()
	src := topic + ".src"
	cfg := amqp.Config{URL: rawURL, Group: "poison"}
	pub, sub, err := amqp.New(cfg, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	defer sub.Close()
	conn, err := amqp091.Dial(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := amqp091.Dial(rawURL)
		if err != nil {
			return
		}
		defer c.Close()
		cc, err := c.Channel()
		if err != nil {
			return
		}
		for _, q := range []string{src, amqp.QueueName(topic, "poison"), amqp.QueueName(topic+".dlq", "poison")} {
			_, _ = cc.QueueDelete(q, false, false, false)
		}
		_ = cc.ExchangeDelete(topic, false, false)
		_ = cc.ExchangeDelete(topic+".dlq", false, false)
	})

	ts := time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)
	headers := map[string]amqp091.Table{
		"good-plain":   {"cloudEvents_type": suite.GoodType},
		"good-table":   {"x-table": amqp091.Table{"a": "b", "n": int32(1)}},
		"good-nested":  {"x-nested": amqp091.Table{"outer": amqp091.Table{"inner": []interface{}{true, "x"}}}},
		"good-array":   {"x-array": []interface{}{"a", int64(2), amqp091.Table{"k": "v"}}},
		"good-decimal": {"x-decimal": amqp091.Decimal{Scale: 2, Value: -12345}},
		"good-time":    {"x-time": ts},
		"good-bytes":   {"x-bytes": []byte{0xff, 0x00, 'h', 'i'}},
		"good-plain-2": {"cloudEvents_type": suite.GoodType},
	}
	want := suite.PoisonWant{
		Good: map[string]map[string]string{
			"good-plain":   {"ce_type": suite.GoodType},
			"good-table":   {"x-table": `{"a":"b","n":1}`},
			"good-nested":  {"x-nested": `{"outer":{"inner":[true,"x"]}}`},
			"good-array":   {"x-array": `["a",2,{"k":"v"}]`},
			"good-decimal": {"x-decimal": "-123.45"},
			"good-time":    {"x-time": "2026-12-03T07:00:00Z"},
			"good-bytes":   {"x-bytes": "/wBoaQ=="},
			"good-plain-2": {"ce_type": suite.GoodType},
			"good-dlx":     nil,
		},
		Check: func(payload string, md message.Metadata) error {
			if payload != "good-dlx" {
				return nil
			}
			var death []map[string]any
			if err := json.Unmarshal([]byte(md.Get("x-death")), &death); err != nil {
				return fmt.Errorf("x-death %q is not a JSON array: %v", md.Get("x-death"), err)
			}
			if len(death) != 1 || death[0]["queue"] != src || death[0]["reason"] != "rejected" {
				return fmt.Errorf("x-death = %s, want one entry for queue %s, reason rejected", md.Get("x-death"), src)
			}
			if !strings.HasPrefix(md.Get("x-first-death-reason"), "rejected") {
				return fmt.Errorf("x-first-death-reason = %q", md.Get("x-first-death-reason"))
			}
			return nil
		},
	}
	ctx := context.Background()
	suite.Poison(t, pub, sub, sub, topic, func(t *testing.T) {
		// A queue dead-lettering into the topic's exchange.
		if _, err := ch.QueueDeclare(src, false, false, false, false, amqp091.Table{"x-dead-letter-exchange": topic}); err != nil {
			t.Fatal(err)
		}
		for _, body := range []string{"good-plain", "good-table", "good-nested", "good-array", "good-decimal", "good-time", "good-bytes", "good-plain-2"} {
			err := ch.PublishWithContext(ctx, topic, "", false, false, amqp091.Publishing{Headers: headers[body], Body: []byte(body)})
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := ch.PublishWithContext(ctx, "", src, false, false, amqp091.Publishing{Body: []byte("good-dlx"), MessageId: "dlx-1"}); err != nil {
			t.Fatal(err)
		}
		var d amqp091.Delivery
		testenv.WaitFor(t, 10*time.Second, "the message in the source queue", func() bool {
			var ok bool
			d, ok, err = ch.Get(src, false)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		})
		if err := d.Reject(false); err != nil {
			t.Fatal(err)
		}
	}, want)
	// Everything was acknowledged: once the App stopped, nothing comes
	// back to the queue.
	sub.Close()
	time.Sleep(200 * time.Millisecond)
	q, err := ch.QueueDeclarePassive(amqp.QueueName(topic, "poison"), true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q.Messages != 0 {
		t.Fatalf("%d messages back in the queue after the App stopped, want 0", q.Messages)
	}
}
