package nats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	nc "github.com/nats-io/nats.go"
)

// ReplyScheme names the reply channel of the NATS transport: replies travel
// on core NATS subjects (no JetStream stream, no consumer, nothing left on
// the server per caller). See [Publisher.NewReplySubscriber].
const ReplyScheme = "nats.core"

// replyFlushTimeout bounds the wait for the server to confirm a reply
// subscription.
const replyFlushTimeout = 10 * time.Second

// ReplyScheme returns [ReplyScheme]: the Publisher offers core NATS as the
// reply channel of request/reply (it implements reqreply.ReplyTransport).
func (p *Publisher) ReplyScheme() string { return ReplyScheme }

// NewReplySubscriber returns a subscriber for one request/reply caller's
// reply topic, on p's connection: each Subscribe is a core NATS
// subscription to the topic as a subject, which ends with its context or
// with Close. Subscribe returns once the server has registered the
// subscription (core NATS delivers only to the subscriptions the server
// knows when a message arrives). Closing the subscriber does not close p's
// connection; closing p ends the subscriptions.
func (p *Publisher) NewReplySubscriber() (message.Subscriber, error) {
	if p.conn.IsClosed() {
		return nil, errors.New("nats: reply subscriber: the publisher's connection is closed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &coreSubscriber{conn: p.conn, ctx: ctx, cancel: cancel}, nil
}

// NewReplyPublisher returns a publisher of replies on p's connection: each
// message is published on core NATS, the topic as subject; a reply nobody
// is subscribed to is dropped by the server. Closing it does not close p's
// connection.
func (p *Publisher) NewReplyPublisher() (message.Publisher, error) {
	if p.conn.IsClosed() {
		return nil, errors.New("nats: reply publisher: the publisher's connection is closed")
	}
	return &corePublisher{conn: p.conn}, nil
}

// corePublisher publishes on core NATS through a connection it does not own.
type corePublisher struct {
	conn   *nc.Conn
	m      Marshaler
	closed atomic.Bool
}

func (p *corePublisher) Publish(topic string, msgs ...*message.Message) error {
	if p.closed.Load() {
		return errors.New("nats: Publish on a closed reply publisher")
	}
	if err := checkTopic(topic); err != nil {
		return err
	}
	for _, msg := range msgs {
		nm, err := p.m.Marshal(topic, msg)
		if err != nil {
			return fmt.Errorf("nats: marshal reply %s: %w", msg.UUID, err)
		}
		if err := p.conn.PublishMsg(nm); err != nil {
			return fmt.Errorf("nats: publish reply %s on %q: %w", msg.UUID, topic, err)
		}
	}
	return nil
}

func (p *corePublisher) Close() error {
	p.closed.Store(true)
	return nil
}

// coreSubscriber consumes core NATS subjects through a connection it does
// not own.
type coreSubscriber struct {
	conn   *nc.Conn
	m      Marshaler
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func (s *coreSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("nats: Subscribe on a closed reply subscriber")
	}
	s.wg.Add(1)
	s.mu.Unlock()
	if err := checkTopic(topic); err != nil {
		s.wg.Done()
		return nil, err
	}
	sub, err := s.conn.SubscribeSync(topic)
	if err != nil {
		s.wg.Done()
		return nil, fmt.Errorf("nats: subscribe to reply topic %q: %w", topic, err)
	}
	if err := s.conn.FlushTimeout(replyFlushTimeout); err != nil {
		_ = sub.Unsubscribe()
		s.wg.Done()
		return nil, fmt.Errorf("nats: subscribe to reply topic %q: the server did not confirm the subscription: %w", topic, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	out := make(chan *message.Message)
	go func() {
		defer s.wg.Done()
		defer close(out)
		defer stop()
		defer cancel()
		defer func() { _ = sub.Unsubscribe() }()
		for {
			nm, err := sub.NextMsgWithContext(ctx)
			if err != nil {
				return // the context ended, or the connection was closed
			}
			msg, _ := s.m.Unmarshal(nm) // never fails
			msg.SetContext(ctx)
			select {
			case out <- msg:
			case <-ctx.Done():
				return
			}
			select {
			case <-msg.Acked():
			case <-msg.Nacked(): // core NATS cannot redeliver: the reply is dropped
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// Close ends every subscription and waits for them; the connection stays open.
func (s *coreSubscriber) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}
