package redis

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	wredis "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/vmihailenco/msgpack"

	"github.com/hexeract/hexeract/adapters/internal/wire"
	"github.com/hexeract/hexeract/router"
)

// Marshaller is the stream entry format Hexeract's publisher and subscriber
// use: Watermill's DefaultMarshallerUnmarshaller (fields
// "_watermill_message_uuid", "metadata" as a msgpack map, "payload"), with
// a decoding that never refuses an entry. Watermill's unmarshaller fails on
// an entry without the UUID field or with metadata that is not a msgpack map
// of strings, and its subscriber's read loop then returns: the subscription
// closes, the entry stays pending and nothing behind it is consumed. This
// one instead:
//
//   - takes the CloudEvents id (ce_id) as UUID when the UUID field is
//     missing, else leaves the UUID empty;
//   - carries metadata values that are not strings in their text form
//     (numbers and booleans as text, binary as its UTF-8 text or base64,
//     timestamps RFC 3339, maps and arrays as JSON; see docs/transports.md);
//   - hands an entry whose metadata field is not a msgpack map at all on as
//     an undecodable message (router.NewUndecodable): the payload field
//     (or, without one, every field of the entry as text) as payload and
//     router.KeyTransportError naming the cause, so the dead-letter
//     middleware moves it to the dead-letter topic and acknowledges it.
type Marshaller struct {
	wredis.DefaultMarshallerUnmarshaller
}

// Unmarshal decodes a stream entry's fields. It never fails.
func (Marshaller) Unmarshal(values map[string]interface{}) (*message.Message, error) {
	uuid := fieldText(values[wredis.UUIDHeaderKey])
	payload, hasPayload := values["payload"]
	body := fieldBytes(payload)
	md, err := decodeMetadata(values["metadata"])
	if err != nil {
		raw := body
		if !hasPayload {
			raw = entryText(values)
		}
		return router.NewUndecodable(uuid, raw, nil, err.Error()), nil
	}
	if uuid == "" {
		uuid = md[router.KeyID]
	}
	msg := message.NewMessage(uuid, body)
	msg.Metadata = md
	return msg, nil
}

// decodeMetadata decodes the msgpack metadata field.
func decodeMetadata(v any) (message.Metadata, error) {
	md := make(message.Metadata)
	raw := fieldBytes(v)
	if len(raw) == 0 {
		return md, nil
	}
	var m map[string]interface{}
	dec := msgpack.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("redis: the entry's metadata field is not a msgpack map: %w", err)
	}
	if _, err := dec.DecodeInterface(); err == nil {
		return nil, errors.New("redis: the entry's metadata field holds more than one msgpack value")
	}
	for k, val := range m {
		md[k] = wire.Text(val, nil)
	}
	return md, nil
}

// fieldText returns a stream field's value as text; go-redis returns every
// field as a string.
func fieldText(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case []byte:
		return string(v)
	default:
		return fmt.Sprint(v)
	}
}

func fieldBytes(v any) []byte {
	if b, ok := v.([]byte); ok {
		return b
	}
	return []byte(fieldText(v))
}

// entryText is the raw form of an entry without a payload field: its fields
// as "name=value" lines, sorted by name.
func entryText(values map[string]interface{}) []byte {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, fieldText(values[k]))
	}
	return b.Bytes()
}

var _ wredis.MarshallerUnmarshaller = Marshaller{}
