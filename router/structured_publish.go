package router

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
)

// ToStructured turns a binary-mode Hexeract message (attributes in
// metadata, data as payload, as [NewMessage] builds it) into the same event
// in CloudEvents structured content mode: the body is the JSON event format
// (the attributes, then the data inlined as "data" when the content type is
// JSON and the payload is valid JSON, as "data_base64" otherwise) and the
// content type is application/cloudevents+json.
//
// The extensions travel in the event (ce_<name> as <name>; correlation_id,
// causation_id, traceparent and tracestate as the extensions correlationid,
// causationid, traceparent and tracestate), so a CloudEvents SDK sees them
// as attributes. The result keeps the Watermill UUID and context, and in
// its metadata every key that is not an attribute (correlation_id,
// causation_id, traceparent, ...; they stay readable as transport headers)
// plus ce_partitionkey, so the Kafka transport still keys the record.
// [ExpandStructured] gives back the binary-mode message.
//
// A message already in structured mode is returned as it is. It returns an
// error for a message without ce_type, ce_source or an id (ce_id or UUID),
// with a specversion other than 1.0, or with a ce_ key that is not a valid
// CloudEvents attribute name.
func ToStructured(msg *message.Message) (*message.Message, error) {
	md := msg.Metadata
	if mediaTypeMode(md.Get(KeyContentType)) != notStructured {
		return msg, nil
	}
	id := md.Get(KeyID)
	if id == "" {
		id = msg.UUID
	}
	typ, source := md.Get(KeyType), md.Get(KeySource)
	if typ == "" || source == "" || id == "" {
		return nil, fmt.Errorf("hexeract: cannot write message %q in CloudEvents structured mode: it needs ce_type, ce_source and ce_id (or a UUID), has type %q source %q; build it with router.NewMessage", msg.UUID, typ, source)
	}
	spec := md.Get(KeySpecVersion)
	if spec == "" {
		spec = SpecVersion
	}
	if spec != SpecVersion {
		return nil, fmt.Errorf("hexeract: cannot write message %q in CloudEvents structured mode: ce_specversion %q, Hexeract writes %s", msg.UUID, spec, SpecVersion)
	}
	ct := md.Get(KeyContentType)

	// The members after the four required ones, sorted by name.
	type member struct{ name, value string }
	members := make([]member, 0, len(md))
	out := message.NewMessage(msg.UUID, nil)
	out.Metadata = make(message.Metadata, len(md))
	for k, v := range md {
		switch {
		case k == KeyID || k == KeyType || k == KeySource || k == KeySpecVersion || k == KeyContentType:
			continue
		case k == KeyDataContentType: // the JS SDK's binary binding writes it beside content-type
			if ct == "" {
				ct = v
			}
			continue
		case strings.HasPrefix(k, CloudEventsPrefix):
			name := k[len(CloudEventsPrefix):]
			if !validAttributeName(name) || name == "data" {
				return nil, fmt.Errorf("hexeract: cannot write message %q in CloudEvents structured mode: metadata key %q is not a CloudEvents attribute (names are lowercase ASCII letters and digits after ce_)", msg.UUID, k)
			}
			members = append(members, member{name, v})
			if k == KeyPartitionKey {
				out.Metadata[k] = v // the Kafka transport keys records with it
			}
			continue
		}
		out.Metadata[k] = v
		switch k {
		case KeyCorrelationID, KeyCausationID, KeyTraceParent, KeyTraceState:
			if v == "" {
				continue
			}
			name := strings.ReplaceAll(k, "_", "")
			if _, taken := md[CloudEventsPrefix+name]; !taken { // an explicit ce_correlationid wins
				members = append(members, member{name, v})
			}
		}
	}
	if ct != "" {
		members = append(members, member{"datacontenttype", ct})
	}
	slices.SortFunc(members, func(a, b member) int { return strings.Compare(a.name, b.name) })

	body := make([]byte, 0, 128+len(msg.Payload)*4/3)
	body = append(body, '{')
	body = appendMember(body, "specversion", spec)
	body = appendMember(body, "id", id)
	body = appendMember(body, "source", source)
	body = appendMember(body, "type", typ)
	for _, m := range members {
		body = appendMember(body, m.name, m.value)
	}
	switch {
	case len(msg.Payload) == 0:
	case isJSONMediaType(ct) && json.Valid(msg.Payload):
		body = append(body, `,"data":`...)
		body = append(body, msg.Payload...)
	default:
		body = append(body, `,"data_base64":"`...)
		body = base64.StdEncoding.AppendEncode(body, msg.Payload)
		body = append(body, '"')
	}
	body = append(body, '}')

	out.Payload = body
	out.Metadata[KeyContentType] = ContentTypeCloudEvents
	out.SetContext(msg.Context())
	return out, nil
}

// appendMember appends ,"name":"value" (without the comma after '{').
func appendMember(b []byte, name, value string) []byte {
	if b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	b = appendJSONString(b, name)
	b = append(b, ':')
	return appendJSONString(b, value)
}

func appendJSONString(b []byte, s string) []byte {
	q, err := json.Marshal(s)
	if err != nil { // a string always encodes
		panic(err)
	}
	return append(b, q...)
}

// StructuredPublisher returns a publisher that writes the messages for
// which when(topic, msg) is true (every message when when is nil) in
// CloudEvents structured content mode ([ToStructured]) and publishes them
// with pub; the others go out unchanged. Use it for consumers that read
// only structured mode (some Dapr, Knative or Event Grid setups); binary
// mode stays the default everywhere else.
//
// Messages that are not CloudEvents (no ce_type), messages already in
// structured mode and dead letters (metadata hexeract_fault_error, or
// Watermill's reason_poisoned) pass unchanged: a dead letter is a copy of
// the message as it was received, and wrapping an App's publisher must not
// make one unpublishable (a dead letter whose publish fails is redelivered).
// Close closes pub. StructuredPublisher panics when pub is nil.
func StructuredPublisher(pub message.Publisher, when func(topic string, msg *message.Message) bool) message.Publisher {
	if pub == nil {
		panic("hexeract: StructuredPublisher of a nil publisher")
	}
	return &structuredPublisher{pub: pub, when: when}
}

type structuredPublisher struct {
	pub  message.Publisher
	when func(topic string, msg *message.Message) bool
}

// Publish converts the selected messages and publishes all of them.
func (p *structuredPublisher) Publish(topic string, msgs ...*message.Message) error {
	out := msgs
	for i, m := range msgs {
		if m == nil || m.Metadata.Get(KeyType) == "" || mediaTypeMode(m.Metadata.Get(KeyContentType)) != notStructured || isDeadLetter(m.Metadata) {
			continue
		}
		if p.when != nil && !p.when(topic, m) {
			continue
		}
		s, err := ToStructured(m)
		if err != nil {
			return err
		}
		if &out[0] == &msgs[0] { // copy before the first change: the caller's slice stays as it was
			out = slices.Clone(msgs)
		}
		out[i] = s
	}
	return p.pub.Publish(topic, out...)
}

func isDeadLetter(md message.Metadata) bool {
	return md.Get(KeyFaultError) != "" || md.Get(KeyPoisonReason) != ""
}

// Close closes the wrapped publisher.
func (p *structuredPublisher) Close() error { return p.pub.Close() }
