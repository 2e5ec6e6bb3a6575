package router

import (
	"fmt"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
)

// UnmarshalError is the fault of a message the transport could not
// unmarshal (see [KeyTransportError]). It is permanent.
type UnmarshalError struct {
	MessageID string // the id the adapter could recover, "" when none
	Topic     string // topic the message was received from, when known
	Cause     string // what the transport could not read
}

// Error names the message and the cause.
func (e *UnmarshalError) Error() string {
	id := e.MessageID
	if id == "" {
		id = "(no id)"
	}
	topic := e.Topic
	if topic == "" {
		topic = "(unknown topic)"
	}
	return fmt.Sprintf("hexeract: the transport could not unmarshal message %s from %s: %s", id, topic, e.Cause)
}

// Permanent reports true: the same bytes fail the same way again.
func (e *UnmarshalError) Permanent() bool { return true }

// NewUndecodable returns the message an adapter hands on for a delivery its
// transport could not unmarshal: raw is the delivery's bytes as received
// (the body, or the whole record when the body cannot be told apart), md the
// metadata that could be read (may be nil), cause what failed. uuid may be
// empty; the dead letter then gets a generated id.
func NewUndecodable(uuid string, raw []byte, md message.Metadata, cause string) *message.Message {
	msg := message.NewMessage(uuid, raw)
	for k, v := range md {
		msg.Metadata[k] = v
	}
	cause = strings.Join(strings.Fields(cause), " ")
	if cause == "" {
		cause = "unknown cause"
	}
	msg.Metadata[KeyTransportError] = cause
	return msg
}

// TransportError returns the cause a transport adapter recorded on msg (see
// [KeyTransportError]) as an [*UnmarshalError], or nil when msg was
// unmarshaled normally.
func TransportError(msg *message.Message, topic string) error {
	cause := msg.Metadata.Get(KeyTransportError)
	if cause == "" {
		return nil
	}
	id := msg.UUID
	if id == "" {
		id = msg.Metadata.Get(KeyID)
	}
	return &UnmarshalError{MessageID: id, Topic: topic, Cause: cause}
}
