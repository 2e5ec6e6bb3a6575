package nats

import (
	"errors"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	wnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	nc "github.com/nats-io/nats.go"
)

// provisioner creates streams and durable consumers once per topic.
type provisioner struct {
	cfg Config
	js  nc.JetStreamContext

	mu        sync.Mutex
	streams   map[string]bool
	consumers map[string]bool
}

func newProvisioner(cfg Config, conn *nc.Conn) (*provisioner, error) {
	js, err := conn.JetStream()
	if err != nil {
		return nil, fmt.Errorf("nats: JetStream context: %w", err)
	}
	return &provisioner{cfg: cfg, js: js, streams: map[string]bool{}, consumers: map[string]bool{}}, nil
}

// ensureStream creates the stream of topic when it does not exist.
func (p *provisioner) ensureStream(topic string) error {
	if err := checkTopic(topic); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.streams[topic] {
		return nil
	}
	name := StreamName(topic)
	if _, err := p.js.StreamInfo(name); err != nil {
		if !errors.Is(err, nc.ErrStreamNotFound) {
			return fmt.Errorf("nats: stream %s for topic %q: %w", name, topic, err)
		}
		_, err = p.js.AddStream(&nc.StreamConfig{
			Name:        name,
			Description: "hexeract topic " + topic,
			Subjects:    []string{topic},
			Storage:     nc.FileStorage,
			Retention:   nc.LimitsPolicy,
			Replicas:    p.cfg.Replicas,
			MaxAge:      p.cfg.MaxAge,
		})
		if err != nil && !errors.Is(err, nc.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("nats: create stream %s for topic %q: %w", name, topic, err)
		}
	}
	p.streams[topic] = true
	return nil
}

// ensureConsumer creates the durable push consumer of the group on topic's
// stream. Because the consumer exists before nats.go subscribes, nats.go
// binds to it and does not delete it when the subscription ends: the group
// keeps its position across restarts.
func (p *provisioner) ensureConsumer(topic string) error {
	if err := p.ensureStream(topic); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.consumers[topic] {
		return nil
	}
	stream, name := StreamName(topic), ConsumerName(p.cfg.Group)
	info, err := p.js.ConsumerInfo(stream, name)
	if err == nil {
		if err := p.updateConsumer(stream, info.Config); err != nil {
			return err
		}
	} else {
		if !errors.Is(err, nc.ErrConsumerNotFound) {
			return fmt.Errorf("nats: consumer %s on stream %s: %w", name, stream, err)
		}
		_, err = p.js.AddConsumer(stream, &nc.ConsumerConfig{
			Durable:        name,
			Description:    "hexeract group " + p.cfg.Group,
			DeliverSubject: "_HEXERACT.deliver." + stream + "." + name,
			DeliverGroup:   name,
			DeliverPolicy:  nc.DeliverAllPolicy,
			AckPolicy:      nc.AckExplicitPolicy,
			AckWait:        p.cfg.AckWait,
			MaxAckPending:  p.cfg.MaxAckPending,
			MaxDeliver:     p.cfg.MaxDeliver,
			FilterSubject:  topic,
		})
		if err != nil {
			// Another instance may have created it with the same config meanwhile.
			if _, infoErr := p.js.ConsumerInfo(stream, name); infoErr != nil {
				return fmt.Errorf("nats: create consumer %s on stream %s: %w", name, stream, err)
			}
		}
	}
	p.consumers[topic] = true
	return nil
}

// updateConsumer applies the configured AckWait, MaxAckPending and
// MaxDeliver to a durable consumer that already exists (created by an
// earlier run, possibly with other values), so that changing them in the
// configuration takes effect for an existing group. The group's position is
// kept.
func (p *provisioner) updateConsumer(stream string, cur nc.ConsumerConfig) error {
	want := cur
	want.AckWait = p.cfg.AckWait
	want.MaxAckPending = p.cfg.MaxAckPending
	want.MaxDeliver = p.cfg.MaxDeliver
	if want.MaxDeliver == 0 {
		want.MaxDeliver = -1 // unlimited, as the server reports it
	}
	if want.AckWait == cur.AckWait && want.MaxAckPending == cur.MaxAckPending && want.MaxDeliver == cur.MaxDeliver {
		return nil
	}
	if _, err := p.js.UpdateConsumer(stream, &want); err != nil {
		return fmt.Errorf("nats: update consumer %s on stream %s to ack_wait=%s, max_ack_pending=%d, max_deliver=%d: %w",
			cur.Durable, stream, want.AckWait, want.MaxAckPending, p.cfg.MaxDeliver, err)
	}
	return nil
}

// Publisher publishes to JetStream, creating each topic's stream on first use.
type Publisher struct {
	*wnats.Publisher
	prov   *provisioner
	conn   *nc.Conn
	logger watermill.LoggerAdapter
}

// Publish stores messages on topic's stream; it returns after JetStream
// acknowledged each one.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if err := p.prov.ensureStream(topic); err != nil {
		return err
	}
	return p.Publisher.Publish(topic, msgs...)
}

func connect(cfg Config) (*nc.Conn, error) {
	conn, err := nc.Connect(cfg.URL, cfg.natsOptions()...)
	if err != nil {
		return nil, fmt.Errorf("nats: cannot connect: %w", err)
	}
	return conn, nil
}

// NewPublisher connects a publisher. logger may be nil.
func NewPublisher(cfg Config, logger watermill.LoggerAdapter) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	conn, err := connect(cfg)
	if err != nil {
		return nil, err
	}
	prov, err := newProvisioner(cfg, conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	p, err := wnats.NewPublisherWithNatsConn(conn, wnats.PublisherPublishConfig{
		Marshaler:         &Marshaler{},
		SubjectCalculator: wnats.DefaultSubjectCalculator,
		JetStream:         cfg.jetStreamConfig(),
	}, nopIfNil(logger))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("nats: publisher: %w", err)
	}
	return &Publisher{Publisher: p, prov: prov, conn: conn, logger: nopIfNil(logger)}, nil
}

// NewSubscriber connects a subscriber of cfg.Group. logger may be nil.
func NewSubscriber(cfg Config, logger watermill.LoggerAdapter) (*Subscriber, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	conn, err := connect(cfg)
	if err != nil {
		return nil, err
	}
	prov, err := newProvisioner(cfg, conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	js, err := conn.JetStream()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("nats: subscriber: JetStream context: %w", err)
	}
	return &Subscriber{
		conn: conn, js: js, cfg: cfg, prov: prov, logger: nopIfNil(logger),
		closing: make(chan struct{}),
	}, nil
}

// New connects a publisher and a subscriber, each on its own connection.
// Close both when done.
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

// Connect opens a NATS connection with the options the Publisher and
// Subscriber use (tools such as adapters/dlq read streams through it).
// Close it when done.
func (c Config) Connect() (*nc.Conn, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return connect(c.withDefaults())
}
