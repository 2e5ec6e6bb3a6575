package amqp

import (
	"strconv"
	"strings"

	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/hexeract/hexeract/adapters/internal/wire"
	"github.com/hexeract/hexeract/router"
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
const kafkaPrefix = router.CloudEventsPrefix

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
// its CloudEvents id as UUID. Header values that are not strings become
// their text form instead of failing the delivery, so a header Hexeract did
// not write never stops a message: numbers and booleans their Go text (42,
// true), timestamps RFC 3339 in UTC, decimals their exact decimal text
// ("123.45"), byte arrays their text when valid UTF-8 and standard
// base64 otherwise, tables and arrays (RabbitMQ's
// own x-death header, for one) JSON with the same rules inside. Unmarshal
// never fails.
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
		s := wire.Text(value, decimalText)
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

// decimalText is the leaf conversion of AMQP values for wire.Text: a
// decimal becomes its exact decimal text ("123.45").
func decimalText(v any) (any, bool) {
	d, ok := v.(amqp091.Decimal)
	if !ok {
		return nil, false
	}
	neg := d.Value < 0
	digits := strconv.FormatInt(int64(d.Value), 10)
	if neg {
		digits = digits[1:]
	}
	if scale := int(d.Scale); scale > 0 {
		if len(digits) <= scale {
			digits = strings.Repeat("0", scale-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
	}
	if neg {
		digits = "-" + digits
	}
	return digits, true
}
