package reqreply

import (
	"github.com/ThreeDotsLabs/watermill/message"
)

// ReplyTransport is implemented by a transport's publisher that has a
// private reply channel of its own, better suited to replies than an
// ordinary topic: adapters/amqp (an exclusive, auto-deleted queue per
// caller instance, reached through RabbitMQ's default exchange) and
// adapters/nats (core NATS subjects, no JetStream stream). Request/reply
// derives its reply transport from the App's publisher through it, so
// neither side configures anything:
//
//   - the caller's [Client] consumes its reply topic with a subscriber from
//     NewReplySubscriber, opened when the client starts and closed with it
//     (on RabbitMQ the queue disappears with it), and marks each request
//     with the channel's ReplyScheme ([router.KeyReplyVia]);
//   - a responder ([Handle]) answers a request marked with the scheme its
//     own App's publisher offers through one publisher from
//     NewReplyPublisher, opened at the first such reply and closed with the
//     App; a request without the mark (a caller on another transport, of an
//     older version, or with [WithReplySubscriber]) is answered through the
//     App's publisher as before.
//
// Every other transport (Kafka, Redis Streams, the PostgreSQL bus, SQS, in
// memory) has no such channel: the client consumes its per-instance reply
// topic ("hexeract.replies.<instance id>") through the App's subscriber.
// [WithReplySubscriber] on the client and [WithReplyPublisher] on a
// responder override the derived transport.
//
// The App's publisher is found through the decorators around it (any
// publisher with an Unwrap() message.Publisher method, as the App's
// default chain has). A third-party transport offers a reply channel by
// implementing these three methods on its publisher.
type ReplyTransport interface {
	// ReplyScheme names the reply channel, the same on every process of
	// the transport (for example "amqp.direct", "nats.core"): a responder
	// uses its own channel only for requests marked with the same name.
	ReplyScheme() string
	// NewReplySubscriber opens a subscriber for one caller instance's reply
	// topic: what it creates on the broker is private to it and removed
	// when it is closed (or its connection drops). The caller closes it.
	NewReplySubscriber() (message.Subscriber, error)
	// NewReplyPublisher opens a publisher that delivers replies to the
	// topics NewReplySubscriber subscribers consume, on any process of the
	// same broker; a reply to a topic nobody consumes any more is dropped.
	// The caller closes it; closing it does not close the transport's
	// publisher it was derived from.
	NewReplyPublisher() (message.Publisher, error)
}

// replyTransportOf returns the reply transport p offers, looking through
// the decorators around it, or nil when it offers none.
func replyTransportOf(p message.Publisher) ReplyTransport {
	for range 32 { // a decorator chain is short; a cycle must not hang
		if p == nil {
			return nil
		}
		if rt, ok := p.(ReplyTransport); ok {
			return rt
		}
		u, ok := p.(interface{ Unwrap() message.Publisher })
		if !ok {
			return nil
		}
		p = u.Unwrap()
	}
	return nil
}
