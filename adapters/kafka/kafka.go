// Package kafka configures Watermill's Kafka transport
// (github.com/ThreeDotsLabs/watermill-kafka/v3, on IBM/sarama) with
// Hexeract's production defaults:
//
//   - consumer groups: subscribers with the same group share the topic's
//     partitions, each group gets every message; offsets are committed after
//     the handler acknowledged the message;
//   - a new group starts at the oldest retained message, so messages
//     published before the group first joined are not skipped;
//   - the partition key is the message's ordering key (metadata
//     "ce_partitionkey", set by router.Keyed messages): messages with the same
//     key go to the same partition and keep their order; messages without a
//     key are spread over partitions;
//   - producer acks from all in-sync replicas (WaitForAll) with retries.
//
// The Publisher and Subscriber returned are Watermill's own types.
package kafka

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/router"
)

// DefaultGroup is the consumer group used when Config.Group is empty.
const DefaultGroup = "hexeract"

// Config configures the Kafka transport. Only Brokers is required.
type Config struct {
	// Brokers are the seed broker addresses, host:port.
	Brokers []string

	// Group is the consumer group; empty means DefaultGroup. Use one group
	// per service.
	Group string

	// NewestOffset makes a group that has no committed offset start at the
	// end of the topic instead of at the oldest retained message.
	NewestOffset bool

	// Acks is the producer's required acks: sarama.WaitForAll,
	// sarama.WaitForLocal or [NoAcks]; 0 means sarama.WaitForAll. (sarama's
	// own NoResponse is 0, so it cannot be told from the default: use NoAcks.)
	Acks sarama.RequiredAcks

	// Partitions and ReplicationFactor are used by SubscribeInitialize to
	// create a topic; 0 means 1 partition and replication factor 1 (set
	// them for production clusters, or create topics beforehand).
	Partitions        int32
	ReplicationFactor int16

	// NackResendSleep is how long the consumer waits before redelivering a
	// nacked message; 0 means 100ms.
	NackResendSleep time.Duration

	// User and Password enable SASL/PLAIN authentication.
	User, Password string

	// TLS enables TLS to the brokers.
	TLS *tls.Config

	// Tune, when set, adjusts the sarama configuration after Hexeract's
	// defaults are applied (called for the producer and the consumer).
	Tune func(*sarama.Config)
}

// NoAcks, as Config.Acks, makes the producer wait for no acknowledgement
// (sarama.NoResponse): Publish returns once the request was sent, and a
// message the broker does not store is lost.
const NoAcks sarama.RequiredAcks = -2

// Validate reports configuration errors, with what to change.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("kafka: Config.Brokers is empty; give at least one seed broker host:port"))
	}
	for _, b := range c.Brokers {
		if b == "" {
			errs = append(errs, errors.New("kafka: Config.Brokers has an empty address"))
		}
	}
	if c.Password != "" && c.User == "" {
		errs = append(errs, errors.New("kafka: Config.Password is set without Config.User"))
	}
	switch c.Acks {
	case 0, sarama.WaitForAll, sarama.WaitForLocal, NoAcks:
	default:
		errs = append(errs, fmt.Errorf("kafka: Config.Acks %d: use sarama.WaitForAll, sarama.WaitForLocal or kafka.NoAcks", c.Acks))
	}
	if c.Partitions < 0 || c.ReplicationFactor < 0 || c.NackResendSleep < 0 {
		errs = append(errs, errors.New("kafka: Config.Partitions, ReplicationFactor and NackResendSleep must not be negative"))
	}
	return errors.Join(errs...)
}

func (c Config) group() string {
	if c.Group == "" {
		return DefaultGroup
	}
	return c.Group
}

func (c Config) sarama(forProducer bool) *sarama.Config {
	var sc *sarama.Config
	if forProducer {
		sc = wkafka.DefaultSaramaSyncPublisherConfig()
	} else {
		sc = wkafka.DefaultSaramaSubscriberConfig()
	}
	sc.Version = sarama.V2_1_0_0
	sc.ClientID = "hexeract"
	switch c.Acks {
	case 0:
		sc.Producer.RequiredAcks = sarama.WaitForAll
	case NoAcks:
		sc.Producer.RequiredAcks = sarama.NoResponse
	default:
		sc.Producer.RequiredAcks = c.Acks
	}
	sc.Producer.Return.Successes = true
	sc.Metadata.Retry.Backoff = 250 * time.Millisecond
	// When a consumer dies without leaving its group, the rebalance that
	// follows waits up to this long for every member to rejoin; sarama's 60 s
	// default stalled the whole group for a minute after a crash (seen in
	// the e2e campaign). Handlers ack fast, so 10 s is ample to rejoin.
	sc.Consumer.Group.Rebalance.Timeout = 10 * time.Second
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	if c.NewestOffset {
		sc.Consumer.Offsets.Initial = sarama.OffsetNewest
	}
	if c.User != "" {
		sc.Net.SASL.Enable = true
		sc.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		sc.Net.SASL.User = c.User
		sc.Net.SASL.Password = c.Password
	}
	if c.TLS != nil {
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = c.TLS
	}
	if c.Tune != nil {
		c.Tune(sc)
	}
	return sc
}

// Marshaler is the Kafka marshaler Hexeract uses: Watermill's default
// encoding (metadata as record headers, payload as value) plus the record
// key taken from the ordering key (metadata "ce_partitionkey"); records
// without one get no key.
type Marshaler struct {
	wkafka.DefaultMarshaler
	// KeyMetadata is the metadata key read as partition key; "" means
	// router.KeyPartitionKey.
	KeyMetadata string
}

// Marshal encodes msg as a Kafka record for topic.
func (m Marshaler) Marshal(topic string, msg *message.Message) (*sarama.ProducerMessage, error) {
	rec, err := m.DefaultMarshaler.Marshal(topic, msg)
	if err != nil {
		return nil, err
	}
	key := m.KeyMetadata
	if key == "" {
		key = router.KeyPartitionKey
	}
	if k := msg.Metadata.Get(key); k != "" {
		rec.Key = sarama.StringEncoder(k)
	}
	return rec, nil
}

// Publisher is Watermill's Kafka publisher.
type Publisher = wkafka.Publisher

// Subscriber is Watermill's Kafka subscriber.
type Subscriber = wkafka.Subscriber

// PublisherConfig returns the watermill-kafka publisher configuration
// Hexeract uses for c.
func (c Config) PublisherConfig() wkafka.PublisherConfig {
	return wkafka.PublisherConfig{
		Brokers:               c.Brokers,
		Marshaler:             Marshaler{},
		OverwriteSaramaConfig: c.sarama(true),
	}
}

// SubscriberConfig returns the watermill-kafka subscriber configuration
// Hexeract uses for c.
func (c Config) SubscriberConfig() wkafka.SubscriberConfig {
	partitions, rf := c.Partitions, c.ReplicationFactor
	if partitions == 0 {
		partitions = 1
	}
	if rf == 0 {
		rf = 1
	}
	nack := c.NackResendSleep
	if nack == 0 {
		nack = 100 * time.Millisecond
	}
	return wkafka.SubscriberConfig{
		Brokers:                c.Brokers,
		Unmarshaler:            Marshaler{},
		OverwriteSaramaConfig:  c.sarama(false),
		ConsumerGroup:          c.group(),
		NackResendSleep:        nack,
		ReconnectRetrySleep:    time.Second,
		InitializeTopicDetails: &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: rf},
	}
}

// NewPublisher connects a synchronous publisher: Publish returns after the
// brokers acknowledged every message. logger may be nil.
func NewPublisher(cfg Config, logger watermill.LoggerAdapter) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p, err := wkafka.NewPublisher(cfg.PublisherConfig(), nopIfNil(logger))
	if err != nil {
		return nil, fmt.Errorf("kafka: publisher: %w", err)
	}
	return p, nil
}

// NewSubscriber returns a subscriber of cfg.Group. logger may be nil.
func NewSubscriber(cfg Config, logger watermill.LoggerAdapter) (*Subscriber, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s, err := wkafka.NewSubscriber(cfg.SubscriberConfig(), nopIfNil(logger))
	if err != nil {
		return nil, fmt.Errorf("kafka: subscriber: %w", err)
	}
	return s, nil
}

// New returns a publisher and a subscriber. Close both when done.
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
