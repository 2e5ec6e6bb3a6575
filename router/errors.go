package router

import (
	"errors"
	"fmt"
)

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string   { return e.err.Error() }
func (e permanentError) Unwrap() error   { return e.err }
func (e permanentError) Permanent() bool { return true }

// Permanent marks err as permanent: retry middleware does not retry it and
// dead-letter middleware moves the message aside at once. Permanent(nil)
// returns nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err: err}
}

// IsPermanent reports whether err, or any error it wraps, is permanent: made
// by [Permanent], a [*DecodeError], or any error with a Permanent() bool
// method that returns true.
func IsPermanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

// DecodeError reports a message that could not be turned into the handler's
// type: missing or unexpected envelope type, or a payload the codec refused.
// It is permanent.
type DecodeError struct {
	MessageID string // Watermill UUID of the message, else its ce_id (or its structured event's id)
	Topic     string // topic the message was received from, when known
	Type      string // ce_type found in the envelope ("" when missing)
	Want      string // wire name the handler expects
	Err       error  // the cause
}

// Error names the message id, the topic, the expected type and the cause.
func (e *DecodeError) Error() string {
	topic := e.Topic
	if topic == "" {
		topic = "(unknown topic)"
	}
	return fmt.Sprintf("hexeract: cannot decode message %s from %s as %q: %v", e.MessageID, topic, e.Want, e.Err)
}

// Unwrap returns the cause.
func (e *DecodeError) Unwrap() error { return e.Err }

// Permanent reports true: decoding the same bytes again fails again.
func (e *DecodeError) Permanent() bool { return true }

// ErrMissingType is the cause of a [DecodeError] for a message without the
// ce_type metadata attribute.
var ErrMissingType = errors.New("missing required attribute ce_type (CloudEvents type)")

// TypeMismatchError is the cause of a [DecodeError] for a message whose
// ce_type is not the one the handler expects.
type TypeMismatchError struct {
	Got, Want string
}

// Error names the type found and the type expected.
func (e *TypeMismatchError) Error() string {
	return fmt.Sprintf("unexpected message type %q (this handler takes %q)", e.Got, e.Want)
}
