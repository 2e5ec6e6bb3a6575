package router

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Handler handles messages of type T.
type Handler[T Message] interface {
	Handle(ctx context.Context, msg T) error
}

// HandlerFunc adapts a function to [Handler].
type HandlerFunc[T Message] func(ctx context.Context, msg T) error

// Handle calls f(ctx, msg).
func (f HandlerFunc[T]) Handle(ctx context.Context, msg T) error { return f(ctx, msg) }

// TopicFunc maps a message type's wire name to the topic it is published on
// and consumed from.
type TopicFunc func(messageType string) string

// DefaultTopic is the default [TopicFunc]: the topic is the wire name.
func DefaultTopic(messageType string) string { return messageType }

// Decode checks that msg's envelope names the wire type want and decodes its
// payload into a T. Every failure is a [*DecodeError] naming the message id,
// its topic and the cause.
//
// A message in CloudEvents structured content mode (one event as an
// application/cloudevents+json body, see [ExpandStructured]) is read as
// the event it carries: its type, then its data, are checked; an invalid
// event fails with a [*StructuredError] as cause. A batch
// (application/cloudevents-batch+json) fails with [ErrStructuredBatch]: a
// hexeract App splits batches before its handlers see them.
func Decode[T Message](msg *message.Message, codec Codec, want string) (T, error) {
	v, _, err := decode[T](msg, codec, want)
	return v, err
}

// decode is Decode that also returns the message it decoded: msg itself,
// or the binary-mode message of the structured event msg carries.
func decode[T Message](msg *message.Message, codec Codec, want string) (T, *message.Message, error) {
	var v T
	got := msg.Metadata.Get(KeyType)
	if mediaTypeMode(msg.Metadata.Get(KeyContentType)) != notStructured || (got == "" && looksLikeEvent(msg.Payload)) {
		return decodeStructured[T](msg, codec, want)
	}
	if got != want {
		cause := ErrMissingType
		if got != "" {
			cause = &TypeMismatchError{Got: got, Want: want}
		}
		return v, msg, newDecodeError(msg, got, want, cause)
	}
	if err := codec.Unmarshal(msg.Payload, &v); err != nil {
		return v, msg, newDecodeError(msg, got, want, err)
	}
	return v, msg, nil
}

// decodeStructured decodes the structured event msg carries.
func decodeStructured[T Message](msg *message.Message, codec Codec, want string) (T, *message.Message, error) {
	var v T
	if modeOf(msg) == structuredBatch {
		return v, msg, newDecodeError(msg, "", want, ErrStructuredBatch)
	}
	msgs, err := ExpandStructured(msg)
	if err != nil {
		de := newDecodeError(msg, "", want, err)
		if serr, ok := err.(*StructuredError); ok && de.MessageID == "" {
			de.MessageID = serr.EventID
		}
		return v, msg, de
	}
	if len(msgs) != 1 { // not an event after all (a body that only looked like one)
		return v, msg, newDecodeError(msg, "", want, ErrMissingType)
	}
	ev := msgs[0]
	got := ev.Metadata.Get(KeyType)
	if got != want {
		return v, ev, newDecodeError(ev, got, want, &TypeMismatchError{Got: got, Want: want})
	}
	if err := codec.Unmarshal(ev.Payload, &v); err != nil {
		return v, ev, newDecodeError(ev, got, want, err)
	}
	return v, ev, nil
}

func newDecodeError(msg *message.Message, got, want string, cause error) *DecodeError {
	id := msg.UUID
	if id == "" {
		id = msg.Metadata.Get(KeyID) // CloudEvents SDKs write no Watermill UUID
	}
	return &DecodeError{
		MessageID: id,
		Topic:     message.SubscribeTopicFromCtx(msg.Context()),
		Type:      got,
		Want:      want,
		Err:       cause,
	}
}

// NewHandlerFunc adapts a typed handler to a Watermill handler function. The
// function decodes each message with [Decode] (JSON when codec is nil) and
// calls h with a context that carries the message, so [EnvelopeFrom] works
// and messages published from the handler are correlated; for a message in
// CloudEvents structured mode that is the binary-mode message of its event
// (see [ExpandStructured]), so the envelope shows the event's attributes.
//
// When T implements [StrictDecoder] and StrictDecoding returns true, the
// codec's strict form decodes T (see [StrictCodec]; JSON becomes
// [StrictJSON]); this is decided here, once, not per message.
//
// It returns an error when h is nil, T has no usable wire name, or T asks
// for strict decoding from a codec that has no strict form.
func NewHandlerFunc[T Message](h Handler[T], codec Codec) (message.NoPublishHandlerFunc, error) {
	if h == nil {
		return nil, fmt.Errorf("hexeract: nil handler for %s", goTypeName[T]())
	}
	if f, ok := h.(HandlerFunc[T]); ok && f == nil {
		return nil, fmt.Errorf("hexeract: nil handler func for %s", goTypeName[T]())
	}
	want, err := TypeName[T]()
	if err != nil {
		return nil, err
	}
	if codec == nil {
		codec = JSON{}
	}
	if codec, err = codecFor[T](codec); err != nil {
		return nil, err
	}
	return func(msg *message.Message) error {
		growStack()
		if msg.Metadata[KeyTransportError] != "" { // rare: only then look the topic up
			return TransportError(msg, message.SubscribeTopicFromCtx(msg.Context()))
		}
		v, in, err := decode[T](msg, codec, want)
		if err != nil {
			return err
		}
		return h.Handle(WithIncoming(msg.Context(), in), v)
	}, nil
}
