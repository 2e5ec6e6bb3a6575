package sqs

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/hexeract/hexeract/adapters/internal/wire"
	"github.com/hexeract/hexeract/router"
)

// Message attribute names used by the adapter. Names starting with
// "hexeract." are reserved.
const (
	// AttrUUID carries the Watermill message UUID.
	AttrUUID = "hexeract.uuid"
	// AttrMetadata carries, as a JSON object of strings, the metadata that
	// did not fit into plain attributes.
	AttrMetadata = "hexeract.metadata"
	// AttrBodyEncoding is "base64" when the body is the base64 of a payload
	// SQS could not carry as text.
	AttrBodyEncoding = "hexeract.body-encoding"

	reservedPrefix = "hexeract."
	maxAttributes  = 10
	maxAttrNameLen = 256
	stringType     = "String"
	base64Encoding = "base64"
)

// sqsEntry is a message ready to send.
type sqsEntry struct {
	body  string
	attrs map[string]types.MessageAttributeValue
	size  int
}

// toSQS converts a Watermill message into an SQS body and attributes.
func toSQS(msg *message.Message) (sqsEntry, error) {
	var e sqsEntry
	e.attrs = make(map[string]types.MessageAttributeValue, min(len(msg.Metadata)+1, maxAttributes))
	if validSQSText(msg.Payload) {
		e.body = string(msg.Payload)
	} else {
		e.body = base64.StdEncoding.EncodeToString(msg.Payload)
		e.attrs[AttrBodyEncoding] = strAttr(base64Encoding)
	}
	if e.body == "" {
		// SQS rejects empty bodies; an empty payload travels as base64 of
		// nothing, flagged, so it round-trips as empty.
		e.body = "="
		e.attrs[AttrBodyEncoding] = strAttr("empty")
	}
	if msg.UUID != "" {
		e.attrs[AttrUUID] = strAttr(msg.UUID)
	}

	keys := make([]string, 0, len(msg.Metadata))
	for k := range msg.Metadata {
		keys = append(keys, k)
	}
	sortKeys(keys)
	slots := maxAttributes - len(e.attrs)
	plain := keys[:0:0]
	var packed map[string]string
	for _, k := range keys {
		if plainAttributeOK(k, msg.Metadata[k]) {
			plain = append(plain, k)
			continue
		}
		if packed == nil {
			packed = make(map[string]string)
		}
		packed[k] = msg.Metadata[k]
	}
	if len(plain) > slots || (packed != nil && len(plain) == slots) {
		keep := slots - 1 // one slot for the packed attribute
		if packed == nil {
			packed = make(map[string]string, len(plain)-keep)
		}
		for _, k := range plain[keep:] {
			packed[k] = msg.Metadata[k]
		}
		plain = plain[:keep]
	}
	for _, k := range plain {
		e.attrs[k] = strAttr(msg.Metadata[k])
	}
	if packed != nil {
		b, err := json.Marshal(packed)
		if err != nil {
			return e, fmt.Errorf("sqs: pack metadata of message %s: %w", msg.UUID, err)
		}
		e.attrs[AttrMetadata] = strAttr(string(b))
	}

	e.size = len(e.body)
	for name, v := range e.attrs {
		e.size += len(name) + len(*v.DataType) + len(*v.StringValue)
	}
	return e, nil
}

// plainFirst lists the metadata keys that stay plain attributes first, in
// this order: W3C trace context (read by OpenTelemetry SQS instrumentation in
// other languages), then Hexeract's CloudEvents envelope.
var plainFirst = []string{ //nolint:gochecknoglobals // a read-only list of metadata keys, never written
	router.KeyTraceParent, router.KeyTraceState, router.KeyType, router.KeyID,
	router.KeyContentType, router.KeySource, router.KeySpecVersion, router.KeyTime,
	router.KeyCorrelationID, router.KeyCausationID, router.KeyPartitionKey,
}

// sortKeys orders metadata keys: those of plainFirst in its order, then the
// others by name.
func sortKeys(keys []string) {
	rank := func(k string) int {
		if i := slices.Index(plainFirst, k); i >= 0 {
			return i
		}
		return len(plainFirst)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if c := cmp.Compare(rank(a), rank(b)); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
}

// plainAttributeOK reports whether a metadata entry can be its own SQS
// message attribute.
func plainAttributeOK(key, value string) bool {
	if key == "" || len(key) > maxAttrNameLen || value == "" || !validSQSText([]byte(value)) {
		return false
	}
	if strings.HasPrefix(key, reservedPrefix) || strings.HasPrefix(strings.ToLower(key), "aws.") ||
		strings.HasPrefix(strings.ToLower(key), "amazon.") || key[0] == '.' || key[len(key)-1] == '.' ||
		strings.Contains(key, "..") {
		return false
	}
	for i := 0; i < len(key); i++ {
		ch := key[i]
		if !(isQueueNameChar(ch) || ch == '.') {
			return false
		}
	}
	return true
}

// validSQSText reports whether b is text SQS accepts in a body or attribute:
// valid UTF-8 of #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF.
func validSQSText(b []byte) bool {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError || r == 0xFFFE || r == 0xFFFF {
			return false
		}
		i += n
	}
	return true
}

func strAttr(v string) types.MessageAttributeValue {
	return types.MessageAttributeValue{DataType: aws.String(stringType), StringValue: aws.String(v)}
}

// fromSQS converts a received SQS message into a Watermill message.
func fromSQS(m types.Message) *message.Message {
	var decodeErrs []string
	payload := []byte(aws.ToString(m.Body))
	switch enc := attrString(m.MessageAttributes, AttrBodyEncoding); enc {
	case "":
	case base64Encoding:
		b, err := base64.StdEncoding.DecodeString(aws.ToString(m.Body))
		if err != nil {
			decodeErrs = append(decodeErrs, fmt.Sprintf("sqs: the body is not base64 as attribute %s says: %v", AttrBodyEncoding, err))
		} else {
			payload = b
		}
	case "empty":
		payload = []byte{}
	default:
		decodeErrs = append(decodeErrs, fmt.Sprintf("sqs: unknown %s %q", AttrBodyEncoding, enc))
	}

	uuid := attrString(m.MessageAttributes, AttrUUID)
	if uuid == "" {
		uuid = aws.ToString(m.MessageId)
	}
	msg := message.NewMessage(uuid, payload)
	for name, v := range m.MessageAttributes {
		if strings.HasPrefix(name, reservedPrefix) {
			continue
		}
		switch {
		case v.StringValue != nil:
			msg.Metadata.Set(name, *v.StringValue)
		case v.BinaryValue != nil:
			msg.Metadata.Set(name, base64.StdEncoding.EncodeToString(v.BinaryValue))
		}
	}
	if packed := attrString(m.MessageAttributes, AttrMetadata); packed != "" {
		md, err := wire.JSONObject([]byte(packed))
		if err != nil {
			decodeErrs = append(decodeErrs, fmt.Sprintf("sqs: attribute %s is %v", AttrMetadata, err))
		}
		for k, v := range md {
			msg.Metadata.Set(k, v)
		}
	}
	if len(decodeErrs) > 0 {
		// Handed on with the raw body: the dead-letter middleware moves it
		// to the dead-letter topic at once, with this cause as its fault.
		msg.Metadata.Set(router.KeyTransportError, strings.Join(decodeErrs, "; "))
	}
	return msg
}

func attrString(attrs map[string]types.MessageAttributeValue, name string) string {
	if v, ok := attrs[name]; ok && v.StringValue != nil {
		return *v.StringValue
	}
	return ""
}
