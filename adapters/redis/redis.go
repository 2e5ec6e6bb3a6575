// Package redis configures Watermill's Redis Streams transport
// (github.com/ThreeDotsLabs/watermill-redisstream, on go-redis v9) with
// Hexeract's defaults:
//
//   - one stream per topic; consumer groups: consumers of a group share the
//     stream, each group gets every message, and a new group starts at the
//     beginning of the stream;
//   - a message is acknowledged (XACK) only after the handler acked it; a
//     message left pending by a crashed consumer is claimed by another
//     member of the group after MaxIdleTime;
//   - a nacked message is redelivered after NackResendSleep.
//
// Durability is Redis's: with the machine's default (no AOF, no RDB) a Redis
// restart loses the streams; enable appendonly for production.
package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wredis "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	goredis "github.com/redis/go-redis/v9"
)

// DefaultGroup is the consumer group used when Config.Group is empty.
const DefaultGroup = "hexeract"

// Defaults of the zero Config fields.
const (
	DefaultNackResendSleep = 100 * time.Millisecond
	DefaultMaxIdleTime     = 60 * time.Second
	DefaultClaimInterval   = 5 * time.Second
)

// Config configures the Redis Streams transport. Only Client is required.
type Config struct {
	// Client is the go-redis client (a *redis.Client, cluster or ring).
	Client goredis.UniversalClient

	// Group is the consumer group; empty means DefaultGroup.
	Group string

	// Consumer names this subscriber inside its group; "" means a random
	// name per subscriber.
	Consumer string

	// MaxLen caps every stream's length (approximately, oldest entries
	// trimmed on publish); 0 means unlimited.
	MaxLen int64

	// NackResendSleep is the wait before a nacked message is redelivered;
	// 0 means DefaultNackResendSleep.
	NackResendSleep time.Duration

	// MaxIdleTime is how long a message may stay pending (delivered, not
	// acked) before another consumer of the group claims it; 0 means
	// DefaultMaxIdleTime. Make it longer than the slowest handler.
	MaxIdleTime time.Duration

	// ClaimInterval is how often idle pending messages are looked for; 0
	// means DefaultClaimInterval.
	ClaimInterval time.Duration
}

// Validate reports configuration errors, with what to change.
func (c Config) Validate() error {
	var errs []error
	if c.Client == nil {
		errs = append(errs, errors.New("redis: Config.Client is nil; pass a go-redis client"))
	}
	errs = append(errs, c.validateOptions())
	return errors.Join(errs...)
}

func (c Config) validateOptions() error {
	if c.MaxLen < 0 || c.NackResendSleep < 0 || c.MaxIdleTime < 0 || c.ClaimInterval < 0 {
		return errors.New("redis: Config.MaxLen, NackResendSleep, MaxIdleTime and ClaimInterval must not be negative")
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.NackResendSleep == 0 {
		c.NackResendSleep = DefaultNackResendSleep
	}
	if c.MaxIdleTime == 0 {
		c.MaxIdleTime = DefaultMaxIdleTime
	}
	if c.ClaimInterval == 0 {
		c.ClaimInterval = DefaultClaimInterval
	}
	return c
}

// Publisher is Watermill's Redis Streams publisher, refusing the empty
// topic (an empty stream key).
type Publisher struct{ *wredis.Publisher }

// Publish appends msgs to topic's stream.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if topic == "" {
		return errEmptyTopic
	}
	return p.Publisher.Publish(topic, msgs...)
}

// Subscriber is Watermill's Redis Streams subscriber, refusing the empty topic.
type Subscriber struct{ *wredis.Subscriber }

// Subscribe consumes topic's stream as a member of the configured group.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if topic == "" {
		return nil, errEmptyTopic
	}
	return s.Subscriber.Subscribe(ctx, topic)
}

var errEmptyTopic = errors.New("redis: empty topic; every topic names a stream")

// NewPublisher returns a publisher (XADD per message). Closing it leaves
// cfg.Client open. logger may be nil.
func NewPublisher(cfg Config, logger watermill.LoggerAdapter) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p, err := wredis.NewPublisher(wredis.PublisherConfig{
		Client:        keepOpen{cfg.Client},
		Marshaller:    Marshaller{},
		DefaultMaxlen: cfg.MaxLen,
	}, nopIfNil(logger))
	if err != nil {
		return nil, fmt.Errorf("redis: publisher: %w", err)
	}
	return &Publisher{p}, nil
}

// NewSubscriber returns a subscriber of cfg.Group. Closing it leaves
// cfg.Client open. logger may be nil.
func NewSubscriber(cfg Config, logger watermill.LoggerAdapter) (*Subscriber, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s, err := wredis.NewSubscriber(wredis.SubscriberConfig{
		Client:                        keepOpen{cfg.Client},
		Unmarshaller:                  Marshaller{},
		Consumer:                      cfg.Consumer,
		ConsumerGroup:                 cfg.Group,
		NackResendSleep:               cfg.NackResendSleep,
		MaxIdleTime:                   cfg.MaxIdleTime,
		ClaimInterval:                 cfg.ClaimInterval,
		OldestId:                      "0",
		DisableIndefiniteInitialBlock: true,
	}, nopIfNil(logger))
	if err != nil {
		return nil, fmt.Errorf("redis: subscriber: %w", err)
	}
	return &Subscriber{s}, nil
}

// New returns a publisher and a subscriber sharing cfg.Client. Close both
// when done; the client stays open for its owner to close.
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

// keepOpen hides Close from Watermill, whose publisher and subscriber would
// otherwise each close the client they were given, breaking the other.
type keepOpen struct{ goredis.UniversalClient }

// Close does nothing: the client belongs to the caller.
func (keepOpen) Close() error { return nil }

func nopIfNil(l watermill.LoggerAdapter) watermill.LoggerAdapter {
	if l == nil {
		return watermill.NopLogger{}
	}
	return l
}
