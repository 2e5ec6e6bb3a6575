package kafka_test

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hexeract/hexeract/adapters/internal/suite"
	"github.com/hexeract/hexeract/adapters/kafka"
	"github.com/hexeract/hexeract/internal/testenv"
)

// TestPoisonHeaders produces records straight to the topic with franz-go,
// interleaved with plain ones: a header given twice, a header value that is
// not UTF-8, a null header value and a record without Watermill's UUID
// header. Every record is handled once, with the first
// value of a repeated header and non-UTF-8 bytes in base64.
func TestPoisonHeaders(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := "hexeract.poison." + testenv.Suffix()
	pub, sub, err := kafka.New(kafka.Config{Brokers: brokers, Group: "poison", Tune: fastGroups}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	defer sub.Close()
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	h := func(kv ...string) []kgo.RecordHeader {
		var out []kgo.RecordHeader
		for i := 0; i < len(kv); i += 2 {
			out = append(out, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
		}
		return out
	}
	records := []*kgo.Record{
		{Value: []byte("good-1"), Headers: h("_watermill_message_uuid", "g1", "ce_type", suite.GoodType)},
		{Value: []byte("good-twice"), Headers: h("ce_type", "first.type", "ce_type", "second.type")},
		{Value: []byte("good-binary"), Headers: h("x-bin", "\xff\xfe\x00")},
		{Value: []byte("good-null"), Headers: []kgo.RecordHeader{{Key: "x-null", Value: nil}}},
		{Value: []byte("good-no-uuid"), Headers: h("ce_id", "evt-1")},
		{Value: []byte("good-2")},
	}
	suite.Poison(t, pub, sub, sub, topic, func(t *testing.T) {
		for _, r := range records {
			r.Topic = topic
			if err := client.ProduceSync(context.Background(), r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}, suite.PoisonWant{
		Good: map[string]map[string]string{
			"good-1":       {"ce_type": suite.GoodType},
			"good-twice":   {"ce_type": "first.type"},
			"good-binary":  {"x-bin": "//4A"},
			"good-null":    {"x-null": ""},
			"good-no-uuid": {"ce_id": "evt-1"},
			"good-2":       nil,
		},
	})
}
