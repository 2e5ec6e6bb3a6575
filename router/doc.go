// Package router holds Hexeract's message model and its typed handlers on
// Watermill's [message.Router].
//
// A message type is a Go struct with a stable wire name:
//
//	type UserRegistered struct {
//		UserID string `json:"user_id"`
//	}
//
//	func (UserRegistered) MessageType() string { return "users.registered" }
//
// The wire name, not the Go type name, travels in the envelope, so services
// written in other languages can produce and consume the message. The
// envelope is Watermill metadata named after the CloudEvents 1.0 attributes
// (ce_id, ce_type, ce_source, ce_specversion, ce_time, content-type) plus
// correlation_id and causation_id; the payload is the codec's encoding of the
// struct (JSON by default).
//
// [NewHandlerFunc] turns a typed [Handler] into a Watermill handler function,
// so typed handlers run on any Watermill router with any Watermill
// middleware. Messages that cannot be decoded produce a [*DecodeError], which
// [IsPermanent] reports as permanent so retry middleware skips it and
// dead-letter middleware moves it aside at once.
//
// Hexeract writes CloudEvents binary content mode by default and reads
// structured content mode too: [ExpandStructured] turns an
// application/cloudevents+json (or -batch+json) message into binary-mode
// messages, and [Decode] reads a single structured event directly;
// [ToStructured], [EncodeOptions].Structured and [StructuredPublisher]
// write structured mode for consumers that need it. [JSON] decodes
// leniently (unknown fields are ignored); [StrictJSON], per App or per
// message type through [StrictDecoder], refuses them.
package router
