package kafka

import (
	"github.com/IBM/sarama"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/adapters/internal/wire"
	"github.com/hexeract/hexeract/router"
)

// Unmarshal decodes a Kafka record as Watermill's DefaultMarshaler does
// (headers as metadata, value as payload), with header values in
// Hexeract's text form and a defined choice for repeated headers:
//
//   - a header value that is valid UTF-8 is taken as is; other bytes are
//     carried as standard base64 (so every transport can carry the value
//     on, and a dead letter keeps it intact); a null value is the empty
//     string;
//   - a header that appears several times takes its first value (Watermill
//     keeps the last one), as on NATS;
//   - a record without Watermill's UUID header, as CloudEvents SDKs in
//     other languages write them, takes its CloudEvents id (header "ce_id")
//     as UUID, so logs, dead letters and DecodeErrors name the event.
//
// It never fails.
func (m Marshaler) Unmarshal(rec *sarama.ConsumerMessage) (*message.Message, error) {
	md := make(message.Metadata, len(rec.Headers))
	uuid, haveUUID := "", false
	for _, h := range rec.Headers {
		if h == nil {
			continue
		}
		key := string(h.Key)
		if key == wkafka.UUIDHeaderKey {
			if !haveUUID {
				uuid, haveUUID = wire.Text(h.Value, nil), true
			}
			continue
		}
		if _, seen := md[key]; !seen {
			md[key] = wire.Text(h.Value, nil)
		}
	}
	if uuid == "" {
		uuid = md[router.KeyID]
	}
	msg := message.NewMessage(uuid, rec.Value)
	msg.Metadata = md
	return msg, nil
}
