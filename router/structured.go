package router

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Media types of the CloudEvents JSON event format in structured content
// mode: one event, or a batch (a JSON array of events).
const (
	ContentTypeCloudEvents      = "application/cloudevents+json"
	ContentTypeCloudEventsBatch = "application/cloudevents-batch+json"
)

// ErrStructuredBatch is the cause of the [DecodeError] a typed handler
// returns for a CloudEvents batch it receives as one message: a batch holds
// several events and a typed handler takes one.
var ErrStructuredBatch = errors.New("CloudEvents structured mode: a batch (" + ContentTypeCloudEventsBatch +
	") holds several events and a typed handler takes one; consume it through a hexeract App, which splits batches, or split it with router.ExpandStructured")

// StructuredError reports a message in CloudEvents structured content mode
// whose body is not a valid CloudEvents 1.0 JSON event (or batch). It is
// permanent: reading the same bytes again fails again.
type StructuredError struct {
	// ContentType is the message's content type ("" when it had none).
	ContentType string
	// FromBody is true when the content type did not say structured mode
	// and the event was recognised from its body (see [ExpandStructured]).
	FromBody bool
	// EventID is the event's id when one could be read, else "".
	EventID string
	// Index is the event's position in a batch, -1 for a single event or
	// for a batch that is wrong as a whole.
	Index int
	// Reason says what is wrong, for example "missing required attribute type".
	Reason string
	// Err is the underlying error (a JSON syntax error, ...), or nil.
	Err error
}

// Error names CloudEvents structured mode, the content type, the event
// (id and batch position when known) and what is wrong.
func (e *StructuredError) Error() string {
	var b strings.Builder
	b.WriteString("hexeract: CloudEvents structured mode")
	switch {
	case e.FromBody && e.ContentType == "":
		b.WriteString(" (recognised from the body; no content type)")
	case e.FromBody:
		fmt.Fprintf(&b, " (recognised from the body; content type %q)", e.ContentType)
	default:
		fmt.Fprintf(&b, " (content type %q)", e.ContentType)
	}
	if e.Index >= 0 {
		fmt.Fprintf(&b, ": batch event %d", e.Index)
	}
	if e.EventID != "" {
		fmt.Fprintf(&b, ": event %q", e.EventID)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *StructuredError) Unwrap() error { return e.Err }

// Permanent reports true.
func (e *StructuredError) Permanent() bool { return true }

// structuredMode is how a message carries a structured event, if it does.
type structuredMode uint8

const (
	notStructured structuredMode = iota
	structuredSingle
	structuredBatch
	structuredSniffed // no structured content type, but the body is an event (Dapr)
)

// mediaTypeMode classifies a content type, case-insensitively and ignoring
// parameters. It does not allocate.
func mediaTypeMode(ct string) structuredMode {
	if len(ct) < len(ContentTypeCloudEvents) {
		return notStructured
	}
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	switch {
	case strings.EqualFold(ct, ContentTypeCloudEvents):
		return structuredSingle
	case strings.EqualFold(ct, ContentTypeCloudEventsBatch):
		return structuredBatch
	}
	return notStructured
}

// modeOf tells how msg carries a structured event. Besides the structured
// content types, a message without the binary-mode attributes ce_type and
// ce_specversion whose body is a JSON object naming "specversion" is a
// candidate: Dapr writes structured events without saying so (no
// content-type on Kafka, text/plain on RabbitMQ). Such a message would fail
// as "missing ce_type" otherwise, so looking at its body costs a valid
// binary-mode message nothing.
func modeOf(msg *message.Message) structuredMode {
	md := msg.Metadata
	if m := mediaTypeMode(md.Get(KeyContentType)); m != notStructured {
		return m
	}
	if md.Get(KeyType) == "" && md.Get(KeySpecVersion) == "" && looksLikeEvent(msg.Payload) {
		return structuredSniffed
	}
	return notStructured
}

var specVersionMember = []byte(`"specversion"`) //nolint:gochecknoglobals // a constant byte pattern, never written

// looksLikeEvent reports whether b starts like a JSON object and mentions
// the member name specversion; the full check is parsing it.
func looksLikeEvent(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{' && bytes.Contains(b, specVersionMember)
}

// ExpandStructured turns a message in CloudEvents structured content mode
// into binary-mode messages, one per event, that typed handlers decode
// like any other. It returns (nil, nil) for a message that is not
// structured.
//
// A message is structured when its content-type metadata (compared without
// case, parameters such as "; charset=utf-8" ignored) is
// application/cloudevents+json (one event) or
// application/cloudevents-batch+json (a JSON array of events). A message
// that has neither the binary-mode attributes ce_type and ce_specversion
// nor a structured content type is structured too when its body is a JSON
// object with a "specversion" member: Dapr wraps every message this way but
// writes no structured content type (no content-type header on Kafka,
// text/plain on RabbitMQ).
//
// Each returned message has the event's id as Watermill UUID and ce_id; its
// metadata holds the event's attributes under Hexeract's keys (type ->
// ce_type, source, specversion, time, subject -> ce_subject, dataschema ->
// ce_dataschema, datacontenttype -> content-type, default
// application/json; the extensions traceparent and tracestate -> the W3C
// keys, correlationid -> correlation_id, causationid -> causation_id,
// partitionkey -> ce_partitionkey, any other extension -> ce_<name>, as
// text) and the original message's other transport metadata: the ce_ keys
// and content-type of the transport are replaced by the event's attributes.
// Its payload is the event's data: the JSON value itself when the data
// content type is JSON, the text of a JSON string otherwise, or the
// decoded data_base64. The messages keep the original message's context.
// Acknowledging them does not acknowledge the original.
//
// An invalid event (not JSON, not an object, a missing or non-string id,
// type, source or specversion, a specversion other than 1.0, an invalid
// time, both data and data_base64, invalid base64, an attribute name or
// value CloudEvents does not allow) gives a permanent [*StructuredError];
// so does a batch that is not a JSON array or is empty. In a batch, one
// invalid event does not hold back the others: it becomes a message of its
// own whose content type stays application/cloudevents+json and whose
// payload is that event's JSON, carrying its id (as UUID and ce_id) and
// type when they could be read. Every decoder refuses it with the same
// *StructuredError ([Decode] and ExpandStructured on that message), so it
// is dead-lettered on its own while the valid events are handled;
// refusing the whole batch would dead-letter good events with the bad one
// and have them handled again when the batch is fixed and replayed.
func ExpandStructured(msg *message.Message) ([]*message.Message, error) {
	mode := modeOf(msg)
	switch mode {
	case notStructured:
		return nil, nil
	case structuredBatch:
		return expandBatch(msg)
	}
	ct := msg.Metadata.Get(KeyContentType)
	var members map[string]json.RawMessage
	if mode == structuredSniffed {
		if json.Unmarshal(msg.Payload, &members) != nil || members == nil {
			return nil, nil
		}
		if _, ok := members["specversion"]; !ok {
			return nil, nil
		}
	} else {
		var serr *StructuredError
		if members, serr = parseObject(msg.Payload, ct, -1); serr != nil {
			return nil, serr
		}
	}
	ev, serr := readEvent(members, ct, -1)
	if serr != nil {
		serr.FromBody = mode == structuredSniffed
		return nil, serr
	}
	return []*message.Message{ev.message(msg)}, nil
}

func expandBatch(msg *message.Message) ([]*message.Message, error) {
	ct := msg.Metadata.Get(KeyContentType)
	var raws []json.RawMessage
	if err := json.Unmarshal(msg.Payload, &raws); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, &StructuredError{ContentType: ct, Index: -1, Reason: "a batch must be a JSON array of events, got a JSON " + te.Value}
		}
		return nil, &StructuredError{ContentType: ct, Index: -1, Reason: "the body is not JSON", Err: err}
	}
	if len(raws) == 0 {
		return nil, &StructuredError{ContentType: ct, Index: -1, Reason: "the batch is empty (or null)"}
	}
	out := make([]*message.Message, 0, len(raws))
	for i, raw := range raws {
		members, serr := parseObject(raw, ct, i)
		if serr == nil {
			var ev *event
			if ev, serr = readEvent(members, ct, i); serr == nil {
				out = append(out, ev.message(msg))
				continue
			}
		}
		out = append(out, invalidEvent(msg, raw, members, serr))
	}
	return out, nil
}

// invalidEvent is the message that stands for an invalid event of a batch:
// structured content type, the event's JSON as payload, its id and type when
// readable.
func invalidEvent(orig *message.Message, raw json.RawMessage, members map[string]json.RawMessage, serr *StructuredError) *message.Message {
	md := transportMetadata(orig.Metadata, 3)
	md[KeyContentType] = ContentTypeCloudEvents
	if serr.EventID != "" {
		md[KeyID] = serr.EventID
	}
	if typ, ok := stringMember(members, "type"); ok && typ != "" {
		md[KeyType] = typ
	}
	out := message.NewMessage(serr.EventID, []byte(raw))
	out.Metadata = md
	out.SetContext(orig.Context())
	return out
}

// transportMetadata copies md without the CloudEvents keys (ce_ and
// content-type), which the event's attributes replace.
func transportMetadata(md message.Metadata, extra int) message.Metadata {
	out := make(message.Metadata, len(md)+extra)
	for k, v := range md {
		if strings.HasPrefix(k, CloudEventsPrefix) || k == KeyContentType {
			continue
		}
		out[k] = v
	}
	return out
}

// parseObject parses data as a JSON object.
func parseObject(data []byte, ct string, index int) (map[string]json.RawMessage, *StructuredError) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, &StructuredError{ContentType: ct, Index: index, Reason: "an event must be a JSON object, got a JSON " + te.Value}
		}
		return nil, &StructuredError{ContentType: ct, Index: index, Reason: "the body is not JSON", Err: err}
	}
	if members == nil {
		return nil, &StructuredError{ContentType: ct, Index: index, Reason: "an event must be a JSON object, got null"}
	}
	return members, nil
}

// stringMember returns the string value of a member, ok false when it is
// missing, null or not a string.
func stringMember(members map[string]json.RawMessage, name string) (string, bool) {
	return jsonString(members[name])
}

// jsonString returns the value of a JSON string taken from a parsed
// document, ok false when raw is not a string. A string without escapes
// is sliced out rather than decoded again (the common case, and most of the
// cost of reading an event otherwise).
func jsonString(raw json.RawMessage) (s string, ok bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if inner := raw[1 : len(raw)-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), true
	}
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// isNull reports whether a raw JSON value is null.
func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// event is a validated structured event.
type event struct {
	id          string
	contentType string
	attrs       []attr // metadata key, value; content type excluded
	data        []byte
}

type attr struct{ key, value string }

// The attributes CloudEvents 1.0 defines and their metadata keys; the four
// required ones first.
var contextAttributes = map[string]string{ //nolint:gochecknoglobals // a read-only lookup table, never written
	"id":              KeyID,
	"type":            KeyType,
	"source":          KeySource,
	"specversion":     KeySpecVersion,
	"time":            KeyTime,
	"subject":         KeySubject,
	"dataschema":      KeyDataSchema,
	"datacontenttype": KeyContentType,
}

// Extensions with a key of their own in Hexeract's metadata.
var extensionKeys = map[string]string{ //nolint:gochecknoglobals // a read-only lookup table, never written
	"traceparent":   KeyTraceParent,
	"tracestate":    KeyTraceState,
	"correlationid": KeyCorrelationID,
	"causationid":   KeyCausationID,
}

// readEvent validates the members of one event and maps them.
func readEvent(members map[string]json.RawMessage, ct string, index int) (*event, *StructuredError) {
	fail := func(id, reason string, err error) (*event, *StructuredError) {
		return nil, &StructuredError{ContentType: ct, EventID: id, Index: index, Reason: reason, Err: err}
	}
	ev := &event{attrs: make([]attr, 0, len(members))}
	// The required attributes first, id first, so every later error can
	// name the event.
	var required [4]string
	for i, name := range [...]string{"id", "type", "source", "specversion"} {
		v, err := attrString(members, name)
		if err != nil {
			return fail(required[0], err.Error(), nil)
		}
		if v == "" {
			return fail(required[0], "missing required attribute "+name, nil)
		}
		required[i] = v
	}
	id := required[0]
	ev.id = id
	if sv := required[3]; sv != SpecVersion {
		return fail(id, fmt.Sprintf("unsupported specversion %q (Hexeract reads CloudEvents %s)", sv, SpecVersion), nil)
	}
	var data, data64 json.RawMessage
	for _, name := range slices.Sorted(maps.Keys(members)) { // sorted: the same event gives the same error
		raw := members[name]
		switch name {
		case "data":
			data = raw
			continue
		case "data_base64":
			data64 = raw
			continue
		}
		if isNull(raw) {
			continue // an attribute whose value is null is absent
		}
		if key, ok := contextAttributes[name]; ok {
			v, err := attrString(members, name)
			if err != nil {
				return fail(id, err.Error(), nil)
			}
			if name == "time" {
				if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
					return fail(id, fmt.Sprintf("attribute time %q is not an RFC 3339 timestamp", v), nil)
				}
			}
			if key == KeyContentType {
				ev.contentType = v
				continue
			}
			ev.attrs = append(ev.attrs, attr{key, v})
			continue
		}
		if !validAttributeName(name) {
			return fail(id, fmt.Sprintf("attribute name %q is not allowed (CloudEvents attribute names are lowercase ASCII letters and digits)", name), nil)
		}
		v, err := extensionText(name, raw)
		if err != nil {
			return fail(id, err.Error(), nil)
		}
		key, ok := extensionKeys[name]
		if !ok {
			key = CloudEventsPrefix + name
		}
		ev.attrs = append(ev.attrs, attr{key, v})
	}
	hasData, has64 := data != nil && !isNull(data), data64 != nil && !isNull(data64)
	switch {
	case hasData && has64:
		return fail(id, "the event has both data and data_base64; it may have one of them", nil)
	case has64:
		s, ok := jsonString(data64)
		if !ok {
			return fail(id, "data_base64 is not a JSON string", nil)
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return fail(id, "data_base64 is not valid base64", err)
		}
		ev.data = b
	case hasData:
		if data[0] == '"' && !isJSONMediaType(ev.contentType) {
			s, ok := jsonString(data)
			if !ok {
				return fail(id, "data is not a valid JSON string", nil)
			}
			ev.data = []byte(s)
		} else {
			ev.data = []byte(data)
		}
	}
	if ev.contentType == "" {
		ev.contentType = JSON{}.ContentType()
	}
	return ev, nil
}

// attrString reads a string attribute: "" when missing or null, an error
// when it is another JSON type.
func attrString(members map[string]json.RawMessage, name string) (string, error) {
	raw, ok := members[name]
	if !ok || isNull(raw) {
		return "", nil
	}
	s, ok := jsonString(raw)
	if !ok {
		return "", fmt.Errorf("attribute %s must be a JSON string, got %s", name, abbreviate(raw))
	}
	return s, nil
}

// extensionText turns an extension value into its metadata text: a string
// as is, a number or boolean as its JSON literal.
func extensionText(name string, raw json.RawMessage) (string, error) {
	switch raw[0] {
	case '"':
		s, ok := jsonString(raw)
		if !ok {
			return "", fmt.Errorf("attribute %s is not a valid JSON string", name)
		}
		return s, nil
	case '{', '[':
		return "", fmt.Errorf("attribute %s is a JSON object or array; CloudEvents attribute values are strings, numbers and booleans", name)
	}
	return string(raw), nil // number, true, false
}

// validAttributeName reports whether name is a CloudEvents attribute name:
// lowercase ASCII letters and digits.
func validAttributeName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// isJSONMediaType reports whether a data content type is JSON:
// application/json, text/json or any +json type, and "" (the CloudEvents
// default).
func isJSONMediaType(ct string) bool {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	if ct == "" {
		return true
	}
	const suffix = "+json"
	return strings.EqualFold(ct, "application/json") || strings.EqualFold(ct, "text/json") ||
		(len(ct) > len(suffix) && strings.EqualFold(ct[len(ct)-len(suffix):], suffix))
}

// abbreviate returns raw JSON for an error message, cut to 40 bytes.
func abbreviate(raw json.RawMessage) string {
	const max = 40
	if len(raw) <= max {
		return string(raw)
	}
	return string(raw[:max]) + "…"
}

// message builds the binary-mode message of ev, keeping orig's transport
// metadata and context.
func (ev *event) message(orig *message.Message) *message.Message {
	md := transportMetadata(orig.Metadata, len(ev.attrs)+1)
	for _, a := range ev.attrs {
		md[a.key] = a.value
	}
	md[KeyContentType] = ev.contentType
	out := message.NewMessage(ev.id, ev.data)
	out.Metadata = md
	out.SetContext(orig.Context())
	return out
}

// ExpandBatch is [ExpandStructured] for batches only: it splits a message
// in CloudEvents batch mode (application/cloudevents-batch+json) into one
// message per event and returns (nil, nil) for any other message. A single
// structured event is left whole, so the handler's decoder reads it and a
// dead letter keeps the body the producer sent.
func ExpandBatch(msg *message.Message) ([]*message.Message, error) {
	if mediaTypeMode(msg.Metadata.Get(KeyContentType)) != structuredBatch {
		return nil, nil
	}
	return expandBatch(msg)
}

// EventType returns the message type msg carries: its ce_type metadata,
// else the type attribute of the single structured event in its body (see
// [ExpandStructured] for when a message is structured), else "".
func EventType(msg *message.Message) string {
	if typ := msg.Metadata.Get(KeyType); typ != "" {
		return typ
	}
	switch modeOf(msg) {
	case structuredSingle, structuredSniffed:
	default:
		return ""
	}
	var head struct {
		Type json.RawMessage `json:"type"`
	}
	if json.Unmarshal(msg.Payload, &head) != nil {
		return ""
	}
	typ, _ := jsonString(head.Type)
	return typ
}

// StructuredEventID returns the id of the single structured event msg
// carries (see [ExpandStructured] for when a message is structured), read
// from its body without validating the rest, or "" when msg is not a
// structured event or its id cannot be read. A batch has no single id.
func StructuredEventID(msg *message.Message) string {
	switch modeOf(msg) {
	case structuredSingle, structuredSniffed:
	default:
		return ""
	}
	var head struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(msg.Payload, &head) != nil {
		return ""
	}
	id, _ := jsonString(head.ID)
	return id
}
