package amqp

import (
	"fmt"
	"maps"

	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
)

// ReplyScheme names the reply channel of the RabbitMQ transport: each
// caller instance consumes its reply topic from an exclusive, auto-deleted
// queue of that name, and replies reach it through the default exchange
// with the topic as routing key. See [Publisher.NewReplySubscriber].
const ReplyScheme = "amqp.direct"

// ReplyPrefetch is the prefetch count of a reply subscriber.
const ReplyPrefetch = 256

// ReplyConfig returns the watermill-amqp configuration of reply topics on
// the broker of base: the default exchange, the topic as routing key and
// queue name, non-durable exclusive auto-deleted queues (RabbitMQ removes
// one when its consumer's connection closes), no publisher confirms (a
// reply lost with the connection leaves its caller to time out, as a reply
// to a caller that is gone does). base's connection settings (URL, TLS,
// connection name, reconnection) and marshaler are kept.
func ReplyConfig(base wamqp.Config) wamqp.Config {
	c := wamqp.NewNonDurableQueueConfig(base.Connection.AmqpURI)
	c.Connection = base.Connection
	if ac := base.Connection.AmqpConfig; ac != nil {
		cp := *ac
		cp.Properties = maps.Clone(ac.Properties)
		if name, ok := cp.Properties["connection_name"].(string); ok {
			cp.Properties["connection_name"] = name + " replies"
		}
		c.Connection.AmqpConfig = &cp
	}
	if base.Marshaler != nil {
		c.Marshaler = base.Marshaler
	}
	c.Queue.Exclusive = true
	c.Queue.AutoDelete = true
	c.Consume.Qos.PrefetchCount = ReplyPrefetch
	c.Publish.ConfirmDelivery = false
	c.Publish.ChannelPoolSize = base.Publish.ChannelPoolSize
	return c
}

// ReplyScheme returns [ReplyScheme]: the Publisher offers RabbitMQ's reply
// channel to request/reply (it implements reqreply.ReplyTransport).
func (p *Publisher) ReplyScheme() string { return ReplyScheme }

// NewReplySubscriber opens a subscriber for one request/reply caller's
// reply topic: on a connection of its own (same URL, TLS and reconnection
// settings as p; the connection name ends in " replies"), it consumes the
// topic from an exclusive, auto-deleted queue of that name, which RabbitMQ
// removes when the subscriber is closed or its connection drops. Close it
// when done.
func (p *Publisher) NewReplySubscriber() (message.Subscriber, error) {
	s, err := wamqp.NewSubscriber(ReplyConfig(p.cfg), p.logger)
	if err != nil {
		return nil, fmt.Errorf("amqp: reply subscriber: %w", err)
	}
	return s, nil
}

// NewReplyPublisher opens a publisher of replies on p's connection (a pool
// of channels of its own): it publishes each reply through the default
// exchange straight into the caller's reply queue, declaring nothing; a
// reply to a queue that is gone is dropped by the broker. Closing it closes
// its channels, not p's connection.
func (p *Publisher) NewReplyPublisher() (message.Publisher, error) {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return nil, ErrPublisherClosed
	}
	rp := &Publisher{cfg: ReplyConfig(p.cfg), logger: p.logger, conn: p.conn, sharedConn: true}
	if _, err := rp.open(); err != nil {
		return nil, fmt.Errorf("amqp: reply publisher: %w", err)
	}
	return rp, nil
}
