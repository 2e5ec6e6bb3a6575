// Package amqp configures Watermill's RabbitMQ transport
// (github.com/ThreeDotsLabs/watermill-amqp/v3) with Hexeract's production
// defaults:
//
//   - a durable fanout exchange per topic and persistent messages, so a
//     message the broker confirmed survives a broker restart;
//   - one durable queue per topic and consumer group, named
//     "<topic>_<group>": consumers sharing a group compete for messages,
//     each group gets every message;
//   - publisher confirms: Publish returns only after the broker took the
//     message;
//   - automatic reconnection with exponential backoff, for publishers and
//     subscribers;
//   - a prefetch window so the consumer does not wait a round trip per message;
//   - the envelope on the wire follows the CloudEvents AMQP binding
//     ("cloudEvents_type" headers, the content-type property; see [Marshaler]),
//     so CloudEvents SDKs in other languages read and write the messages.
//
// The Subscriber is Watermill's own type and the [Publisher] a thin wrapper
// around Watermill's; both are Watermill publishers and subscribers, so every
// Watermill feature (middleware, router, SubscribeInitialize) works unchanged.
package amqp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// DefaultGroup is the consumer group used when Config.Group is empty.
const DefaultGroup = "hexeract"

// DefaultPrefetch is the default number of unacknowledged messages RabbitMQ
// delivers ahead to one consumer.
const DefaultPrefetch = 64

// DefaultChannelPoolSize is the default number of publisher channels.
const DefaultChannelPoolSize = 8

// Config configures the RabbitMQ transport. Only URL is required.
type Config struct {
	// URL is the AMQP 0-9-1 URI, for example amqp://guest:guest@127.0.0.1:5672/
	// (amqps:// for TLS). The vhost is the path.
	URL string

	// Group is the consumer group: subscribers with the same group share one
	// durable queue per topic ("<topic>_<group>") and compete for its
	// messages; each group receives every message. Empty means DefaultGroup.
	// Use one group per service.
	Group string

	// Prefetch is the QoS prefetch count per consumer; 0 means
	// DefaultPrefetch. 1 gives strict order even across redeliveries at the
	// cost of one round trip per message.
	Prefetch int

	// NoConfirm disables publisher confirms. With confirms (the default)
	// Publish returns only after RabbitMQ has taken each message; without
	// them a message can be lost if the connection drops right after Publish.
	NoConfirm bool

	// ChannelPoolSize is the number of AMQP channels the publisher keeps
	// open and reuses for concurrent Publish calls; 0 means
	// DefaultChannelPoolSize. (Watermill's own default, a new channel per
	// Publish, costs two extra round trips per call.)
	ChannelPoolSize int

	// TLS configures TLS for amqps:// URLs; nil uses the system roots.
	TLS *tls.Config

	// ConnectionName is the name RabbitMQ shows for the connections (the
	// "connection_name" client property, in rabbitmqctl list_connections
	// user_provided_name and the management UI). Empty means
	// "hexeract <program> <pid>".
	ConnectionName string

	// ReconnectMaxInterval caps the backoff between reconnection attempts;
	// 0 means 10s.
	ReconnectMaxInterval time.Duration

	// KafkaStyleHeaders writes the envelope as Watermill's DefaultMarshaler
	// does ("ce_type" headers, "content-type" header) instead of following
	// the CloudEvents AMQP binding ("cloudEvents_type" headers, content-type
	// property; see [Marshaler]). Set it only while consumers that decode
	// with Watermill's DefaultMarshaler still read these messages; decoding
	// accepts both forms either way (see [Marshaler]).
	KafkaStyleHeaders bool
}

func (c Config) withDefaults() Config {
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.Prefetch == 0 {
		c.Prefetch = DefaultPrefetch
	}
	if c.ReconnectMaxInterval == 0 {
		c.ReconnectMaxInterval = 10 * time.Second
	}
	if c.ChannelPoolSize == 0 {
		c.ChannelPoolSize = DefaultChannelPoolSize
	}
	if c.ConnectionName == "" {
		c.ConnectionName = fmt.Sprintf("hexeract %s %d", filepath.Base(os.Args[0]), os.Getpid())
	}
	return c
}

// Validate reports configuration errors, with what to change.
func (c Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("amqp: Config.URL is empty; set it to amqp://user:password@host:5672/vhost"))
	}
	if c.Prefetch < 0 {
		errs = append(errs, fmt.Errorf("amqp: Config.Prefetch is %d; it must be 0 (default %d) or more", c.Prefetch, DefaultPrefetch))
	}
	if c.ChannelPoolSize < 0 {
		errs = append(errs, fmt.Errorf("amqp: Config.ChannelPoolSize is %d; it must be 0 or more", c.ChannelPoolSize))
	}
	if c.ReconnectMaxInterval < 0 {
		errs = append(errs, errors.New("amqp: Config.ReconnectMaxInterval must not be negative"))
	}
	return errors.Join(errs...)
}

// QueueName returns the durable queue a subscriber of group consumes topic from.
func QueueName(topic, group string) string {
	if group == "" {
		group = DefaultGroup
	}
	return topic + "_" + group
}

// WatermillConfig returns the watermill-amqp configuration Hexeract uses for
// cfg, for callers who want to adjust it further before calling
// watermill-amqp's constructors themselves.
func (c Config) WatermillConfig() wamqp.Config {
	c = c.withDefaults()
	group := c.Group
	wc := wamqp.NewDurablePubSubConfig(c.URL, func(topic string) string { return QueueName(topic, group) })
	// The same dial as watermill-amqp's default (amqp091.DialTLS), plus the
	// connection name; parameters in the URL (heartbeat, channel_max, ...)
	// still apply.
	wc.Connection.AmqpConfig = &amqp091.Config{
		TLSClientConfig: c.TLS,
		Locale:          "en_US",
		Properties:      amqp091.Table{"connection_name": c.ConnectionName},
	}
	wc.Connection.Reconnect = &wamqp.ReconnectConfig{
		BackoffInitialInterval:     200 * time.Millisecond,
		BackoffRandomizationFactor: 0.5,
		BackoffMultiplier:          1.5,
		BackoffMaxInterval:         c.ReconnectMaxInterval,
	}
	wc.Publish.ConfirmDelivery = !c.NoConfirm
	wc.Publish.ChannelPoolSize = c.ChannelPoolSize
	wc.Consume.Qos.PrefetchCount = c.Prefetch
	wc.Marshaler = Marshaler{KafkaStyleHeaders: c.KafkaStyleHeaders}
	return wc
}

// Subscriber is Watermill's RabbitMQ subscriber.
type Subscriber = wamqp.Subscriber

// NewSubscriber connects a subscriber of cfg.Group. logger may be nil.
func NewSubscriber(cfg Config, logger watermill.LoggerAdapter) (*Subscriber, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s, err := wamqp.NewSubscriber(cfg.WatermillConfig(), nopIfNil(logger))
	if err != nil {
		return nil, fmt.Errorf("amqp: subscriber: %w", err)
	}
	return s, nil
}

// New connects a publisher and a subscriber, each on its own connection (as
// RabbitMQ recommends, so flow control on publishing never stalls
// consuming). Close both when done.
func New(cfg Config, logger watermill.LoggerAdapter) (*Publisher, *Subscriber, error) {
	pub, err := NewPublisher(cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	sub, err := NewSubscriber(cfg, logger)
	if err != nil {
		_ = pub.Close()
		return nil, nil, err
	}
	return pub, sub, nil
}

func nopIfNil(l watermill.LoggerAdapter) watermill.LoggerAdapter {
	if l == nil {
		return watermill.NopLogger{}
	}
	return l
}
