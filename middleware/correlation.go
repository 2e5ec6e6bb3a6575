package middleware

import (
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/internal/msgtrace"
	"github.com/hexeract/hexeract/router"
)

// Correlation is middleware that makes the message being handled the
// "incoming" message of its context (router.WithIncoming), so anything the
// handler publishes with router.NewMessage or hexeract's App.Publish, or
// through a [CorrelationPublisher], carries the incoming correlation_id and
// takes the incoming id as its causation_id. Messages the handler returns
// (Watermill handlers with a publish topic) get the same two keys when they
// have none.
//
// Typed handlers (router.NewHandlerFunc) already set the incoming message;
// Correlation extends the rule to raw Watermill handlers. It is Watermill's
// CorrelationID middleware plus causation and context propagation, with the
// same correlation_id metadata key.
func Correlation(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		if router.IncomingFrom(msg.Context()) != msg {
			msg.SetContext(router.WithIncoming(msg.Context(), msg))
		}
		out, err := h(msg)
		for _, m := range out {
			stampCorrelation(m, msg)
		}
		return out, err
	}
}

// stampCorrelation gives m the correlation of in and in's id as causation,
// keeping keys m already has. It does nothing when m is in itself.
func stampCorrelation(m, in *message.Message) {
	if m == nil || m == in || m.UUID == in.UUID {
		return
	}
	inID := msgtrace.MessageID(in)
	if m.Metadata == nil {
		m.Metadata = make(message.Metadata)
	}
	if m.Metadata.Get(router.KeyCorrelationID) == "" {
		c := router.CorrelationIDOf(in.Metadata)
		if c == "" {
			c = inID
		}
		m.Metadata.Set(router.KeyCorrelationID, c)
	}
	if m.Metadata.Get(router.KeyCausationID) == "" {
		m.Metadata.Set(router.KeyCausationID, inID)
	}
}

// CorrelationPublisher decorates pub so a message published with a context
// that carries an incoming message (msg.SetContext(handlerCtx), or
// router.NewMessage inside a handler) gets correlation_id and causation_id
// from it when it has none, even when it was built with
// message.NewMessage by hand. Messages without an incoming message in their
// context are published unchanged.
func CorrelationPublisher(pub message.Publisher) message.Publisher {
	if decorated[*correlationPublisher](pub) {
		return pub
	}
	return &correlationPublisher{pub: pub}
}

type correlationPublisher struct{ pub message.Publisher }

func (p *correlationPublisher) Publish(topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		if m == nil {
			continue
		}
		if in := router.IncomingFrom(m.Context()); in != nil {
			stampCorrelation(m, in)
		}
	}
	return p.pub.Publish(topic, msgs...)
}

func (p *correlationPublisher) Close() error { return p.pub.Close() }

// Unwrap returns the decorated publisher.
func (p *correlationPublisher) Unwrap() message.Publisher { return p.pub }
