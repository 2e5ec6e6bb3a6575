// Package replynats configures core NATS for Hexeract request/reply replies.
//
// An App on adapters/nats needs none of this: request/reply derives the same
// reply channel from the App's publisher (see reqreply.ReplyTransport).
// Use these constructors for an App whose publisher is not adapters/nats's, or
// to keep an explicit setup; then give both sides their half.
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
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	nc "github.com/nats-io/nats.go"
)

// NewReplySubscriber connects a core NATS subscriber for a
// [github.com/hexeract/hexeract/reqreply.Client]'s reply topic. opts are
// extra connection options (credentials, TLS). logger may be nil.
func NewReplySubscriber(url string, logger watermill.LoggerAdapter, opts ...nc.Option) (*Subscriber, error) {
	conn, err := nc.Connect(url, append([]nc.Option{nc.Name("hexeract-replies"), nc.MaxReconnects(-1)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("replynats: subscriber: connect: %w", err)
	}
	s, err := wnats.NewSubscriberWithNatsConn(conn, wnats.SubscriberSubscriptionConfig{
		JetStream: wnats.JetStreamConfig{Disabled: true},
	}, nopIfNil(logger))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("replynats: subscriber: %w", err)
	}
	return &Subscriber{Subscriber: s, conn: conn}, nil
}

// Subscriber is Watermill's core NATS subscriber whose Subscribe returns
// only once the NATS server has registered the subscription. Core NATS
// delivers a message only to the subscriptions the server knows when it
// arrives, and a client subscribes to its reply topic just before its first
// request when its App is not running yet: without the round trip, a reply
// could reach the server before the subscription and be lost.
type Subscriber struct {
	*wnats.Subscriber
	conn *nc.Conn
}

// flushTimeout bounds the wait for the server to confirm a subscription.
const flushTimeout = 10 * time.Second

// Subscribe subscribes to topic and waits until the server has registered
// the subscription.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	out, err := s.Subscriber.Subscribe(ctx, topic)
	if err != nil {
		return nil, err
	}
	if err := s.conn.FlushTimeout(flushTimeout); err != nil {
		return nil, fmt.Errorf("replynats: subscribe to %q: the server did not confirm the subscription: %w", topic, err)
	}
	return out, nil
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
