package kafka

import (
	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/hexeract/hexeract/router"
)

// Unmarshal decodes a Kafka record as Watermill's DefaultMarshaler does
// (headers as metadata, value as payload). A record without Watermill's
// UUID header, as CloudEvents SDKs in other languages write them, takes its
// CloudEvents id (header "ce_id") as UUID, so logs, dead letters and
// DecodeErrors name the event.
func (m Marshaler) Unmarshal(rec *sarama.ConsumerMessage) (*message.Message, error) {
	msg, err := m.DefaultMarshaler.Unmarshal(rec)
	if err != nil {
		return nil, err
	}
	if msg.UUID == "" {
		msg.UUID = msg.Metadata.Get(router.KeyID)
	}
	return msg, nil
}
