package kafka_test

import (
	"testing"

	"github.com/IBM/sarama"

	"github.com/hexeract/hexeract/adapters/kafka"
)

// TestUnmarshalTakesCloudEventsIDAsUUID: a record a CloudEvents SDK wrote
// has no Watermill UUID header; its ce_id becomes the message UUID. A record
// with the header keeps it.
func TestUnmarshalTakesCloudEventsIDAsUUID(t *testing.T) {
	rec := &sarama.ConsumerMessage{
		Headers: []*sarama.RecordHeader{
			{Key: []byte("ce_id"), Value: []byte("evt-1")},
			{Key: []byte("ce_type"), Value: []byte("users.registered")},
		},
		Value: []byte(`{}`),
	}
	msg, err := kafka.Marshaler{}.Unmarshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if msg.UUID != "evt-1" || msg.Metadata.Get("ce_type") != "users.registered" {
		t.Fatalf("uuid %q metadata %v", msg.UUID, msg.Metadata)
	}
	rec.Headers = append(rec.Headers, &sarama.RecordHeader{Key: []byte("_watermill_message_uuid"), Value: []byte("wm-1")})
	if msg, err = (kafka.Marshaler{}).Unmarshal(rec); err != nil || msg.UUID != "wm-1" {
		t.Fatalf("uuid %q, %v; want the Watermill UUID wm-1", msg.UUID, err)
	}
}
