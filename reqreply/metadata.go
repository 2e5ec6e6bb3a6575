package reqreply

import (
	"time"

	"github.com/hexeract/hexeract/router"
)

// Metadata keys Hexeract request/reply adds to the envelope of requests and
// replies; they are defined in package router (router/keys.go), with every
// other metadata key.
const (
	// Deprecated: use router.KeyReplyTo.
	KeyReplyTo = router.KeyReplyTo
	// Deprecated: use router.KeyRequestID.
	KeyRequestID = router.KeyRequestID
	// Deprecated: use router.KeyRequestDeadline.
	KeyDeadline = router.KeyRequestDeadline
	// Deprecated: use router.KeyReplyAck.
	KeyAck = router.KeyReplyAck
	// Deprecated: use router.KeyReplyStatus.
	KeyReplyStatus = router.KeyReplyStatus
)

// Values of [router.KeyReplyStatus].
const (
	StatusOK       = "ok"
	StatusError    = "error"
	StatusAccepted = "accepted"
)

// errorReplyType is the wire name of an error reply.
const errorReplyType = "hexeract.reqreply.error"

// errorReply is the payload of an error reply.
type errorReply struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Permanent bool   `json:"permanent,omitempty"`
}

func (errorReply) MessageType() string { return errorReplyType }

// acceptedReply is the (empty) payload of a receipt.
type acceptedReply struct{}

func (acceptedReply) MessageType() string { return "hexeract.reqreply.accepted" }

// ParseDeadline parses the value of the [router.KeyRequestDeadline] metadata key. ok is
// false when the value is empty or malformed.
func ParseDeadline(v string) (deadline time.Time, ok bool) {
	if v == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

// TTL returns the time left before the deadline in the [router.KeyRequestDeadline]
// metadata value v, for transports with a per-message time to live. For
// RabbitMQ, set it as the message expiration in the Watermill AMQP
// marshaler so the broker drops requests nobody waits for:
//
//	amqp.DefaultMarshaler{PostprocessPublishing: func(p amqp091.Publishing) amqp091.Publishing {
//		if v, ok := p.Headers[router.KeyRequestDeadline].(string); ok {
//			if ttl, ok := reqreply.TTL(v); ok {
//				p.Expiration = strconv.FormatInt(ttl.Milliseconds(), 10)
//			}
//		}
//		return p
//	}}
//
// ok is false when v carries no deadline. A deadline already passed gives
// one millisecond, the shortest TTL brokers accept.
func TTL(v string) (ttl time.Duration, ok bool) {
	d, ok := ParseDeadline(v)
	if !ok {
		return 0, false
	}
	ttl = time.Until(d)
	if ttl < time.Millisecond {
		ttl = time.Millisecond
	}
	return ttl, true
}

func formatDeadline(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
