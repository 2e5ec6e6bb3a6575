// Package mem is Hexeract's in-memory message broker: the transport an App
// uses when it is given none, and the one `mem://` opens.
//
// Unlike Watermill's GoChannel, it has consumer groups, so it behaves like
// the brokers Hexeract runs on in production: every group subscribed to a
// topic gets every message, and the subscriptions of one group (replicas of
// one service) compete for them. A message published to a topic is queued
// for each group that has subscribed to it (or was initialised with
// SubscribeInitialize) and stays queued until a member of the group
// acknowledges it; a nack puts it back at the head of the group's queue, to
// be delivered again at once, possibly to another member. A group's queue
// outlives its subscriptions (like a durable RabbitMQ queue) until the
// broker is closed. Messages published to a topic no group has subscribed to
// yet are dropped, as a RabbitMQ exchange without a bound queue drops them.
//
// Messages live only in the process: use it for tests, examples and
// in-process decoupling, never where a message must survive a restart.
package mem

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// DefaultGroup is the consumer group of [Broker.Subscriber] called with "".
const DefaultGroup = "hexeract"

// ErrClosed is returned by Publish and Subscribe after the broker or the
// subscriber was closed.
var ErrClosed = errors.New("mem: closed")

// Config configures a [Broker]. The zero value is usable.
type Config struct {
	// Logger receives the broker's debug lines (messages dropped because no
	// group subscribed to their topic). nil means no logging.
	Logger watermill.LoggerAdapter
}

// Broker is an in-memory broker with consumer groups. [Broker.Publisher]
// and [Broker.Subscriber] return its Watermill Publisher and its Watermill
// Subscriber for one consumer group; closing those leaves the broker open.
// The Broker itself is a Publisher too, closed with [Broker.Close]. It is
// safe for concurrent use.
type Broker struct {
	logger watermill.LoggerAdapter

	mu      sync.Mutex
	topics  map[string]map[string]*queue // topic -> group -> queue
	closed  bool
	closing chan struct{}
	wg      sync.WaitGroup // consumer goroutines
}

// New returns an empty broker.
func New(cfg Config) *Broker {
	if cfg.Logger == nil {
		cfg.Logger = watermill.NopLogger{}
	}
	return &Broker{
		logger:  cfg.Logger,
		topics:  make(map[string]map[string]*queue),
		closing: make(chan struct{}),
	}
}

// queue holds one group's pending messages of one topic.
type queue struct {
	items []*message.Message // FIFO; the head is items[0]
	// wake is closed (and replaced) whenever a message is queued, waking
	// every consumer waiting for one.
	wake chan struct{}
}

// Publisher returns a publisher on the broker. Closing it does not close
// the broker.
func (b *Broker) Publisher() *Publisher { return &Publisher{broker: b} }

// Publisher publishes to a [Broker]. It is a Watermill Publisher.
type Publisher struct {
	broker *Broker
	mu     sync.RWMutex
	closed bool
}

// Publish queues a copy of each message for every group subscribed to
// topic; see [Broker.Publish]. It fails after Close.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	return p.broker.Publish(topic, msgs...)
}

// Close makes later Publish calls fail; the broker stays open.
func (p *Publisher) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	return nil
}

// Publish queues a copy of each message for every group subscribed to
// topic. It never blocks on consumers.
func (b *Broker) Publish(topic string, msgs ...*message.Message) error {
	if topic == "" {
		return errors.New("mem: empty topic")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	groups := b.topics[topic]
	if len(groups) == 0 {
		b.logger.Debug("mem: no group subscribed to the topic; message dropped", watermill.LogFields{"topic": topic, "messages": len(msgs)})
		return nil
	}
	for _, q := range groups {
		for _, m := range msgs {
			q.items = append(q.items, m.Copy())
		}
		close(q.wake)
		q.wake = make(chan struct{})
	}
	return nil
}

// Close closes every subscription (their channels are closed; messages in
// flight are dropped with the queues) and makes Publish and Subscribe fail.
// It waits for the consumer goroutines to return and is safe to call more
// than once.
func (b *Broker) Close() error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.closing)
	}
	b.mu.Unlock()
	b.wg.Wait()
	return nil
}

// queueFor returns the queue of (topic, group), creating it.
func (b *Broker) queueFor(topic, group string) (*queue, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	groups := b.topics[topic]
	if groups == nil {
		groups = make(map[string]*queue)
		b.topics[topic] = groups
	}
	q := groups[group]
	if q == nil {
		q = &queue{wake: make(chan struct{})}
		groups[group] = q
	}
	return q, nil
}

// next waits for the head of q and removes it. It returns nil when done
// is closed or the broker closes first.
func (b *Broker) next(q *queue, done <-chan struct{}) *message.Message {
	for {
		b.mu.Lock()
		if len(q.items) > 0 {
			m := q.items[0]
			q.items[0] = nil
			q.items = q.items[1:]
			b.mu.Unlock()
			return m
		}
		wake := q.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-done:
			return nil
		case <-b.closing:
			return nil
		}
	}
}

// requeue puts m back at the head of q.
func (b *Broker) requeue(q *queue, m *message.Message) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	q.items = append(q.items, nil)
	copy(q.items[1:], q.items)
	q.items[0] = m
	close(q.wake)
	q.wake = make(chan struct{})
}

// Pending returns how many messages wait (not counting those in flight) in
// the queue of topic and group; 0 when the queue does not exist.
func (b *Broker) Pending(topic, group string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if q := b.topics[topic][group]; q != nil {
		return len(q.items)
	}
	return 0
}

// Subscriber returns a subscriber in consumer group group ("" means
// [DefaultGroup]). Subscriptions of one group compete for the messages;
// every group gets every message.
func (b *Broker) Subscriber(group string) *Subscriber {
	if group == "" {
		group = DefaultGroup
	}
	return &Subscriber{broker: b, group: group, closing: make(chan struct{})}
}

// Subscriber consumes from a [Broker] in one consumer group. It is a
// Watermill Subscriber and SubscribeInitializer.
type Subscriber struct {
	broker *Broker
	group  string

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	wg      sync.WaitGroup
}

// Group returns the subscriber's consumer group.
func (s *Subscriber) Group() string { return s.group }

// SubscribeInitialize creates the group's queue for topic, so messages
// published before the first Subscribe are kept for the group.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	if topic == "" {
		return errors.New("mem: empty topic")
	}
	_, err := s.broker.queueFor(topic, s.group)
	return err
}

// Subscribe delivers the messages of topic for the subscriber's group, one
// at a time: the next message comes once the previous one was acknowledged
// or nacked (a nacked message is delivered again at once, to this or
// another subscription of the group). The channel is closed when ctx ends,
// or the subscriber or the broker is closed; a message in flight then goes
// back to the queue at once (as RabbitMQ requeues the unacknowledged
// messages of a closed channel) and a later acknowledgement is ignored.
// hexeract.App closes its subscriptions only after its handlers finished.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if topic == "" {
		return nil, errors.New("mem: empty topic")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	b := s.broker
	q, err := b.queueFor(topic, s.group)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	b.wg.Add(1)
	b.mu.Unlock()
	sub := &subscription{
		broker: b,
		ctx:    ctx,
		queue:  q,
		out:    make(chan *message.Message),
		done:   make(chan struct{}),
	}
	go func() {
		select {
		case <-ctx.Done():
		case <-s.closing:
		case <-b.closing:
		}
		close(sub.done)
	}()
	s.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer s.wg.Done()
		defer close(sub.out)
		sub.consume()
	}()
	return sub.out, nil
}

// subscription is one Subscribe call: a consumer of one group's queue.
type subscription struct {
	broker *Broker
	ctx    context.Context
	queue  *queue
	out    chan *message.Message
	done   chan struct{} // closed when ctx ends or the subscriber or broker closes
}

func (s *subscription) consume() {
	for {
		m := s.broker.next(s.queue, s.done)
		if m == nil || !s.deliver(m) {
			return
		}
	}
}

// deliver hands one delivery of m to the subscription's channel and waits
// for its outcome. It reports false when the subscription ended.
func (s *subscription) deliver(m *message.Message) bool {
	b := s.broker
	delivery := m.Copy()
	// The message's context ends once it is acknowledged or nacked, as
	// Watermill's transports do.
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	delivery.SetContext(ctx)
	select {
	case s.out <- delivery:
	case <-s.done:
		b.requeue(s.queue, m)
		return false
	}
	select {
	case <-delivery.Acked():
		return true
	case <-delivery.Nacked():
		b.requeue(s.queue, m)
		return true
	case <-s.done:
		// The subscription ends while the message is in flight: like a
		// RabbitMQ channel that closes, give it back at once; an
		// acknowledgement that comes later is ignored.
		b.requeue(s.queue, m)
		return false
	}
}

// Close ends the subscriber's subscriptions (messages in flight go back to
// their queues) and waits for their goroutines. It is safe to call more
// than once.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closing)
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// String names the subscriber's group, for logs.
func (s *Subscriber) String() string { return fmt.Sprintf("mem.Subscriber(group=%s)", s.group) }

var (
	_ message.Publisher            = (*Broker)(nil)
	_ message.Publisher            = (*Publisher)(nil)
	_ message.Subscriber           = (*Subscriber)(nil)
	_ message.SubscribeInitializer = (*Subscriber)(nil)
)
