package router

import "github.com/ThreeDotsLabs/watermill/message"

// AssumeEnvelope gives a raw message, one that carries no CloudEvents type
// (no ce_type metadata and no structured event in its body), the envelope
// of wire type typ: ce_type typ, ce_id the Watermill UUID (when ce_id is
// missing), ce_specversion "1.0" and [KeyAssumedType] "true". It leaves a
// message that has a type alone and reports whether it changed msg.
//
// It lets typed handlers consume what existing raw Watermill producers
// publish (a JSON body the codec decodes as the type) before those
// producers are changed. A hexeract App calls it for the topics given with
// hexeract.WithRawMessages or handlers added with hexeract.WithAcceptRaw; on a
// plain Watermill router use [AssumeType].
func AssumeEnvelope(msg *message.Message, typ string) bool {
	if typ == "" || EventType(msg) != "" {
		return false
	}
	if msg.Metadata == nil {
		msg.Metadata = make(message.Metadata, 4)
	}
	md := msg.Metadata
	md[KeyType] = typ
	if md[KeyID] == "" {
		md[KeyID] = msg.UUID
	}
	if md[KeySpecVersion] == "" {
		md[KeySpecVersion] = SpecVersion
	}
	md[KeyAssumedType] = "true"
	return true
}

// AssumeType returns Watermill handler middleware that gives every raw
// message reaching the handler the envelope of wire type typ (see
// [AssumeEnvelope]), so a typed handler function ([NewHandlerFunc]) on a
// plain Watermill router accepts messages from producers that write no
// CloudEvents envelope. Add it to that handler only
// (handler.AddMiddleware), or to a router whose topics all carry typ.
func AssumeType(typ string) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			AssumeEnvelope(msg, typ)
			return h(msg)
		}
	}
}
