// Package replyamqp configures RabbitMQ for Hexeract request/reply replies.
//
// An App on adapters/amqp needs none of this: request/reply derives the same
// reply channel from the App's publisher (see reqreply.ReplyTransport).
// Use these constructors for an App whose publisher is not adapters/amqp's, or
// to keep an explicit setup; then give both sides their half.
//
// Requests travel like any other message (the App's transport, for example
// adapters/amqp: a durable queue per topic and group, so requests wait for a
// responder that restarts). Replies need something else: each caller
// instance has its own reply topic, which should live exactly as long as the
// instance. [NewReplySubscriber] consumes each reply topic from an exclusive,
// auto-deleted queue of that name, which RabbitMQ removes when the instance
// disconnects; [NewReplyPublisher] publishes replies through the default
// exchange straight into that queue, so no exchange is declared per caller.
// A reply to an instance that is gone is dropped by the broker.
//
//	replies, _ := replyamqp.NewReplySubscriber(url, nil)
//	client, _ := reqreply.NewClient(app, reqreply.WithReplySubscriber(replies))
//
//	replyPub, _ := replyamqp.NewReplyPublisher(url, nil)
//	reqreply.Handle(app, handler, reqreply.WithReplyPublisher(replyPub))
//
// [Marshaler] sets the RabbitMQ expiration of each request from its
// deadline, so the broker drops requests nobody waits for any more.
package replyamqp

import (
	"fmt"
	"strconv"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/hexeract/hexeract/reqreply"
	"github.com/hexeract/hexeract/router"
)

// Config returns the watermill-amqp configuration of reply topics: default
// exchange, routing key and queue name equal to the topic, non-durable
// exclusive auto-deleted queues, transient messages.
func Config(url string) wamqp.Config {
	c := wamqp.NewNonDurableQueueConfig(url)
	c.Queue.Exclusive = true
	c.Queue.AutoDelete = true
	c.Consume.Qos.PrefetchCount = 256
	return c
}

// NewReplySubscriber connects a subscriber for a [reqreply.Client]'s reply
// topic. logger may be nil.
func NewReplySubscriber(url string, logger watermill.LoggerAdapter) (*wamqp.Subscriber, error) {
	s, err := wamqp.NewSubscriber(Config(url), nopIfNil(logger))
	if err != nil {
		return nil, fmt.Errorf("replyamqp: subscriber: %w", err)
	}
	return s, nil
}

// NewReplyPublisher connects a publisher for responders' replies. logger may be nil.
func NewReplyPublisher(url string, logger watermill.LoggerAdapter) (*wamqp.Publisher, error) {
	p, err := wamqp.NewPublisher(Config(url), nopIfNil(logger))
	if err != nil {
		return nil, fmt.Errorf("replyamqp: publisher: %w", err)
	}
	return p, nil
}

// Marshaler returns base with a PostprocessPublishing step (run after
// base's own, if any) that sets the expiration of each request to the time
// left before its deadline ([router.KeyRequestDeadline]). Use it in the
// watermill-amqp configuration of the publisher that sends requests.
func Marshaler(base wamqp.DefaultMarshaler) wamqp.DefaultMarshaler {
	prev := base.PostprocessPublishing
	base.PostprocessPublishing = func(p amqp091.Publishing) amqp091.Publishing {
		if prev != nil {
			p = prev(p)
		}
		if v, ok := p.Headers[router.KeyRequestDeadline].(string); ok {
			if ttl, ok := reqreply.TTL(v); ok {
				p.Expiration = strconv.FormatInt(ttl.Milliseconds(), 10)
			}
		}
		return p
	}
	return base
}

func nopIfNil(l watermill.LoggerAdapter) watermill.LoggerAdapter {
	if l == nil {
		return watermill.NopLogger{}
	}
	return l
}
