// Package replynats configures core NATS for Hexeract request/reply replies.
//
// Requests travel like any other message (the App's transport, for example
// adapters/nats on JetStream, so requests wait for a responder that
// restarts). Replies go to one caller instance and are useless once it is
// gone, so they travel on core NATS: no stream, no consumer, nothing left
// behind per instance. Give [NewReplySubscriber]'s subscriber to the
// client and [NewReplyPublisher]'s publisher to the responders:
//
//	replies, _ := replynats.NewReplySubscriber(url, nil)
//	client, _ := reqreply.NewClient(app, reqreply.WithReplySubscriber(replies))
//
//	replyPub, _ := replynats.NewReplyPublisher(url, nil)
//	reqreply.Handle(app, handler, reqreply.WithReplyPublisher(replyPub))
//
// A JetStream publisher cannot send replies: it would need (and
// adapters/nats would create) a stream per reply topic.
package replynats

import (
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	wnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	nc "github.com/nats-io/nats.go"
)

// NewReplySubscriber connects a core NATS subscriber for a
// [github.com/hexeract/hexeract/reqreply.Client]'s reply topic. opts are
// extra connection options (credentials, TLS). logger may be nil.
func NewReplySubscriber(url string, logger watermill.LoggerAdapter, opts ...nc.Option) (*wnats.Subscriber, error) {
	s, err := wnats.NewSubscriber(wnats.SubscriberConfig{
		URL:         url,
		NatsOptions: append([]nc.Option{nc.Name("hexeract-replies"), nc.MaxReconnects(-1)}, opts...),
		JetStream:   wnats.JetStreamConfig{Disabled: true},
	}, nopIfNil(logger))
	if err != nil {
		return nil, fmt.Errorf("replynats: subscriber: %w", err)
	}
	return s, nil
}

// NewReplyPublisher connects a core NATS publisher for responders' replies.
func NewReplyPublisher(url string, logger watermill.LoggerAdapter, opts ...nc.Option) (*wnats.Publisher, error) {
	p, err := wnats.NewPublisher(wnats.PublisherConfig{
		URL:         url,
		NatsOptions: append([]nc.Option{nc.Name("hexeract-replies"), nc.MaxReconnects(-1)}, opts...),
		JetStream:   wnats.JetStreamConfig{Disabled: true},
	}, nopIfNil(logger))
	if err != nil {
		return nil, fmt.Errorf("replynats: publisher: %w", err)
	}
	return p, nil
}

func nopIfNil(l watermill.LoggerAdapter) watermill.LoggerAdapter {
	if l == nil {
		return watermill.NopLogger{}
	}
	return l
}
