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
func Decode[T Message](msg *message.Message, codec Codec, want string) (T, error) {
	var v T
	got := msg.Metadata.Get(KeyType)
	if got != want {
		var cause error = ErrMissingType
		if got != "" {
			cause = &TypeMismatchError{Got: got, Want: want}
		}
		return v, newDecodeError(msg, got, want, cause)
	}
	if err := codec.Unmarshal(msg.Payload, &v); err != nil {
		return v, newDecodeError(msg, got, want, err)
	}
	return v, nil
}

func newDecodeError(msg *message.Message, got, want string, cause error) *DecodeError {
	return &DecodeError{
		MessageID: msg.UUID,
		Topic:     message.SubscribeTopicFromCtx(msg.Context()),
		Type:      got,
		Want:      want,
		Err:       cause,
	}
}

// NewHandlerFunc adapts a typed handler to a Watermill handler function. The
// function decodes each message with [Decode] (JSON when codec is nil) and
// calls h with a context that carries the message, so [EnvelopeFrom] works
// and messages published from the handler are correlated. It returns an
// error when h is nil or T has no usable wire name.
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
	return func(msg *message.Message) error {
		growStack()
		v, err := Decode[T](msg, codec, want)
		if err != nil {
			return err
		}
		return h.Handle(WithIncoming(msg.Context(), msg), v)
	}, nil
}
