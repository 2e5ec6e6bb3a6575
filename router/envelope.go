package router

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
)

// SpecVersion is the CloudEvents specification version Hexeract writes.
const SpecVersion = "1.0"

// DefaultSource is the ce_source written when none is configured.
const DefaultSource = "hexeract"

// Envelope is the decoded metadata of a message: its CloudEvents attributes
// plus correlation. Read it inside a handler with [EnvelopeFrom].
type Envelope struct {
	ID            string
	Type          string
	Source        string
	SpecVersion   string
	Time          time.Time // zero when ce_time is missing or malformed
	ContentType   string
	CorrelationID string
	CausationID   string
	// Topic is the topic the message was received from ("" outside a handler).
	Topic string
	// Metadata is the message's full metadata, shared with the message: treat it as read-only.
	Metadata message.Metadata
}

// EnvelopeOf reads the envelope of a Watermill message. The id falls back to
// the Watermill UUID when ce_id is missing.
func EnvelopeOf(msg *message.Message) Envelope {
	md := msg.Metadata
	env := Envelope{
		ID:            md.Get(KeyID),
		Type:          md.Get(KeyType),
		Source:        md.Get(KeySource),
		SpecVersion:   md.Get(KeySpecVersion),
		ContentType:   md.Get(KeyContentType),
		CorrelationID: CorrelationIDOf(md),
		CausationID:   md.Get(KeyCausationID),
		Topic:         message.SubscribeTopicFromCtx(msg.Context()),
		Metadata:      md,
	}
	if env.ID == "" {
		env.ID = msg.UUID
	}
	if t := md.Get(KeyTime); t != "" {
		env.Time, _ = time.Parse(time.RFC3339Nano, t)
	}
	return env
}

type incomingKey struct{}

// WithIncoming returns a context that carries msg as the message being
// handled. Messages built with [NewMessage] from that context inherit its
// correlation id and take its id as their causation id. Typed handlers get
// such a context automatically.
func WithIncoming(ctx context.Context, msg *message.Message) context.Context {
	return context.WithValue(ctx, incomingKey{}, msg)
}

// IncomingFrom returns the message being handled, or nil outside a handler.
func IncomingFrom(ctx context.Context) *message.Message {
	msg, _ := ctx.Value(incomingKey{}).(*message.Message)
	return msg
}

// EnvelopeFrom returns the envelope of the message being handled. ok is
// false outside a handler.
func EnvelopeFrom(ctx context.Context) (env Envelope, ok bool) {
	msg := IncomingFrom(ctx)
	if msg == nil {
		return Envelope{}, false
	}
	return EnvelopeOf(msg), true
}

type correlationKey struct{}

// WithCorrelationID returns a context whose outgoing messages carry id as
// their correlation id (when no incoming message is being handled), for
// example an HTTP request id at the edge of the system.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, correlationKey{}, id)
}

// EncodeOptions configure [NewMessage]. The zero value is usable: JSON codec,
// source [DefaultSource], a fresh UUIDv7 id, the current time, binary
// content mode.
type EncodeOptions struct {
	Codec  Codec     // nil means JSON
	Source string    // ce_source; "" means DefaultSource
	ID     string    // ce_id and Watermill UUID; "" means a new UUIDv7
	Time   time.Time // ce_time; zero means now
	// Structured writes the message in CloudEvents structured content mode
	// (see [ToStructured]): the whole event as an
	// application/cloudevents+json body. false (the default) writes binary
	// mode: attributes in metadata, the encoded struct as payload.
	Structured bool
}

// NewMessage encodes m into a Watermill message carrying the Hexeract
// envelope. When ctx carries an incoming message (inside a handler), the new
// message gets its correlation id and takes its id as causation id; otherwise
// the correlation id comes from [WithCorrelationID] or is the new message's
// own id. The returned message's context is ctx, so publisher decorators
// (tracing) can read the active span. It returns an error for a nil message
// and for one whose MessageType is empty.
func NewMessage(ctx context.Context, m Message, opts EncodeOptions) (*message.Message, error) {
	if m == nil {
		return nil, errors.New("hexeract: NewMessage of a nil message")
	}
	typ := m.MessageType()
	if typ == "" {
		// No handler can take a message without ce_type (Decode refuses it).
		return nil, fmt.Errorf("hexeract: %T.MessageType returned an empty wire name; return a constant such as \"orders.placed\"", m)
	}
	codec := opts.Codec
	if codec == nil {
		codec = JSON{}
	}
	payload, err := codec.Marshal(m)
	if err != nil {
		return nil, err
	}
	id := opts.ID
	if id == "" {
		id = NewID()
	}
	at := opts.Time
	if at.IsZero() {
		at = time.Now()
	}
	source := opts.Source
	if source == "" {
		source = DefaultSource
	}
	msg := message.NewMessage(id, payload)
	md := make(message.Metadata, 8) // one map group: the envelope without extras
	msg.Metadata = md
	md[KeyID] = id
	md[KeyType] = typ
	md[KeySource] = source
	md[KeySpecVersion] = SpecVersion
	md[KeyTime] = at.UTC().Format(time.RFC3339Nano)
	md[KeyContentType] = codec.ContentType()
	if k, ok := m.(Keyed); ok {
		if key := k.OrderingKey(); key != "" {
			md[KeyPartitionKey] = key
		}
	}
	correlation := id
	if in := IncomingFrom(ctx); in != nil {
		inID := in.Metadata.Get(KeyID)
		if inID == "" {
			inID = in.UUID
		}
		md[KeyCausationID] = inID
		if c := CorrelationIDOf(in.Metadata); c != "" {
			correlation = c
		} else {
			correlation = inID
		}
	} else if c, _ := ctx.Value(correlationKey{}).(string); c != "" {
		correlation = c
	}
	md[KeyCorrelationID] = correlation
	msg.SetContext(ctx)
	if opts.Structured {
		return ToStructured(msg)
	}
	return msg, nil
}

// NewID returns a new message id: a UUIDv7 string, time-ordered so database
// indexes on message ids (outbox, inbox) stay compact.
func NewID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}
