package amqp

import (
	"fmt"
	"strings"
	"time"

	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/hexeract/hexeract/router"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// CloudEvents AMQP binding header prefixes. The binding puts each
// CloudEvents attribute in an application property named prefix + attribute
// ("cloudEvents_type"); its current text prefers "cloudEvents_" and asks
// receivers to accept the older "cloudEvents:" as well.
const (
	CEHeaderPrefix       = "cloudEvents_"
	CEHeaderPrefixLegacy = "cloudEvents:"
)

// kafkaPrefix is how Hexeract's envelope spells CloudEvents attributes in
// metadata (the Kafka binding's header prefix).
const kafkaPrefix = "ce_"

// Marshaler encodes messages for RabbitMQ following the CloudEvents AMQP
// protocol binding (binary content mode), so CloudEvents producers and
// consumers in other languages read and write Hexeract messages:
//
//   - metadata "ce_<attr>" travels as the header "cloudEvents_<attr>"
//     ("ce_type" as "cloudEvents_type", extensions such as "ce_partitionkey"
//     likewise);
//   - metadata "content-type" (datacontenttype) travels as the AMQP
//     content-type message property, not as a header;
//   - every other metadata key (correlation_id, causation_id, traceparent,
//     fault keys) travels as a header of the same name.
//
// Decoding reverses this and also accepts the "cloudEvents:" prefix, plain
// "ce_" headers (as Watermill's DefaultMarshaler writes them) and a
// "content-type" header. A message without Watermill's UUID header takes
// its CloudEvents id as UUID. Header values that are not strings (numbers,
// booleans, timestamps a non-Go producer may send) become their text form
// instead of failing the delivery.
//
// It is the marshaler [Config.WatermillConfig] uses.
type Marshaler struct {
	wamqp.DefaultMarshaler
	// KafkaStyleHeaders makes Marshal write as the embedded DefaultMarshaler
	// does ("ce_" headers, "content-type" header), for consumers that still
	// decode with Watermill's DefaultMarshaler. Unmarshal is the same either way.
	KafkaStyleHeaders bool
}

// Marshal encodes msg as an AMQP publishing.
func (m Marshaler) Marshal(msg *message.Message) (amqp091.Publishing, error) {
	p, err := m.DefaultMarshaler.Marshal(msg)
	if err != nil || m.KafkaStyleHeaders {
		return p, err
	}
	for key, value := range msg.Metadata {
		switch {
		case key == router.KeyContentType && value != "":
			delete(p.Headers, key)
			if p.ContentType == "" {
				p.ContentType = value
			}
		case strings.HasPrefix(key, kafkaPrefix):
			delete(p.Headers, key)
			p.Headers[CEHeaderPrefix+key[len(kafkaPrefix):]] = value
		}
	}
	return p, nil
}

// Unmarshal decodes an AMQP delivery into a Watermill message.
func (m Marshaler) Unmarshal(d amqp091.Delivery) (*message.Message, error) {
	uuidKey := m.MessageUUIDHeaderKey
	if uuidKey == "" {
		uuidKey = wamqp.DefaultMessageUUIDHeaderKey
	}
	md := make(message.Metadata, len(d.Headers)+1)
	uuid := ""
	for key, value := range d.Headers {
		s, err := headerString(value)
		if err != nil {
			return nil, fmt.Errorf("amqp: header %q: %w", key, err)
		}
		switch {
		case key == uuidKey:
			uuid = s
		case strings.HasPrefix(key, CEHeaderPrefix):
			md[kafkaPrefix+key[len(CEHeaderPrefix):]] = s
		case strings.HasPrefix(key, CEHeaderPrefixLegacy):
			md[kafkaPrefix+key[len(CEHeaderPrefixLegacy):]] = s
		default:
			md[key] = s
		}
	}
	if d.ContentType != "" && md[router.KeyContentType] == "" {
		md[router.KeyContentType] = d.ContentType
	}
	if uuid == "" {
		uuid = md[router.KeyID]
	}
	msg := message.NewMessage(uuid, d.Body)
	msg.Metadata = md
	return msg, nil
}

// headerString returns the text of an AMQP table value.
func headerString(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case []byte:
		return string(v), nil
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano), nil
	case nil:
		return "", nil
	case bool, int, int8, int16, int32, int64, uint8, uint16, uint32, uint64, float32, float64, amqp091.Decimal:
		return fmt.Sprint(v), nil
	default:
		return "", fmt.Errorf("value of type %T is not text", v)
	}
}
