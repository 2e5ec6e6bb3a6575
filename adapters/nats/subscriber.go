package nats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	nc "github.com/nats-io/nats.go"
)

// Subscriber consumes topics through the group's durable consumers.
//
// Each Subscribe binds a queue member to the group's push consumer and
// keeps the messages JetStream pushed to it in a buffer of 2 x MaxAckPending
// (room for redeliveries of messages still buffered).
// When the subscription ends (its context is cancelled or the Subscriber
// is closed) it unsubscribes and naks at once every message it received and
// did not hand to a handler, and the one handed out whose handler has not
// answered yet: JetStream gives them to another member (or to this group
// after a restart) at once, instead of after AckWait. A message whose
// handler acked or nacked it is settled as the handler said.
type Subscriber struct {
	conn   *nc.Conn
	js     nc.JetStreamContext
	cfg    Config
	prov   *provisioner
	logger watermill.LoggerAdapter

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	wg      sync.WaitGroup
}

// Subscribe consumes topic as a member of the configured group.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("nats: Subscribe on a closed subscriber")
	}
	// Counted before the lock is released, so a Close that comes now waits
	// for this Subscribe (and the members it starts) instead of racing it.
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	if err := s.prov.ensureConsumer(topic); err != nil {
		return nil, err
	}
	stream, consumer := StreamName(topic), ConsumerName(s.cfg.Group)
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan *message.Message)
	var members sync.WaitGroup
	for i := 0; i < s.cfg.SubscribersCount; i++ {
		// The server never has more than MaxAckPending messages of the
		// consumer unacknowledged, so the buffer does not overflow (a
		// message dropped by nats.go as a slow consumer would only come
		// back after AckWait).
		buf := make(chan *nc.Msg, 2*s.cfg.MaxAckPending) // room for redeliveries of messages still buffered
		sub, err := s.js.ChanQueueSubscribe(topic, consumer, buf, nc.Bind(stream, consumer), nc.ManualAck())
		if err != nil {
			cancel() // the members started so far give back what they hold
			return nil, fmt.Errorf("nats: subscribe to %q (stream %s, consumer %s): %w", topic, stream, consumer, err)
		}
		members.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer members.Done()
			s.consume(ctx, topic, sub, buf, out)
		}()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		members.Wait()
		cancel()
		close(out) // before Close returns
	}()
	return out, nil
}

// consume hands the messages of one queue member to out until ctx ends or
// the Subscriber closes, then gives back what it holds.
func (s *Subscriber) consume(ctx context.Context, topic string, sub *nc.Subscription, buf chan *nc.Msg, out chan<- *message.Message) {
	defer s.giveBack(topic, sub, buf)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.closing:
			return
		case m := <-buf:
			if !s.deliver(ctx, topic, m, out) {
				return
			}
		}
	}
}

// deliver hands one message to out and settles it as its handler says. It
// returns false when the subscription is ending (the message was naked).
func (s *Subscriber) deliver(ctx context.Context, topic string, m *nc.Msg, out chan<- *message.Message) bool {
	msg, _ := (&Marshaler{}).Unmarshal(m) // never fails
	msgCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	msg.SetContext(msgCtx)
	select {
	case out <- msg:
	case <-ctx.Done():
		s.nak(m, topic)
		return false
	case <-s.closing:
		s.nak(m, topic)
		return false
	}
	timeout := time.NewTimer(s.cfg.AckWait)
	defer timeout.Stop()
	select {
	case <-msg.Acked():
		s.ack(m, topic)
		return true
	case <-msg.Nacked():
		s.nak(m, topic)
		return true
	case <-timeout.C:
		// JetStream redelivers it after AckWait anyway; go on.
		return true
	case <-ctx.Done():
	case <-s.closing:
	}
	// Ending: settle as the handler said if it already did, else nak.
	select {
	case <-msg.Acked():
		s.ack(m, topic)
		return false
	default:
		s.nak(m, topic)
		return false
	}
}

func (s *Subscriber) ack(m *nc.Msg, topic string) {
	if err := m.Ack(); err != nil {
		s.logger.Error("nats: cannot ack", err, watermill.LogFields{"topic": topic})
	}
}

func (s *Subscriber) nak(m *nc.Msg, topic string) {
	if err := m.Nak(); err != nil {
		s.logger.Error("nats: cannot nak", err, watermill.LogFields{"topic": topic})
	}
}

// giveBack ends the member's subscription and naks the messages it
// received but never handed out.
func (s *Subscriber) giveBack(topic string, sub *nc.Subscription, buf chan *nc.Msg) {
	if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nc.ErrConnectionClosed) && !errors.Is(err, nc.ErrBadSubscription) {
		s.logger.Error("nats: cannot unsubscribe", err, watermill.LogFields{"topic": topic})
	}
	n := 0
	for {
		select {
		case m := <-buf:
			s.nak(m, topic)
			n++
		default:
			if n > 0 {
				s.logger.Debug("nats: gave back unhandled messages", watermill.LogFields{"topic": topic, "count": n})
			}
			if err := s.conn.Flush(); err != nil && !errors.Is(err, nc.ErrConnectionClosed) {
				s.logger.Error("nats: cannot flush acks and naks", err, watermill.LogFields{"topic": topic})
			}
			return
		}
	}
}

// SubscribeInitialize creates topic's stream and the group's consumer, so
// messages published from now on are kept for the group.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	return s.prov.ensureConsumer(topic)
}

// Close ends every subscription (giving back what they hold, see
// [Subscriber]), waits for them up to AckWait, then drains and closes the
// connection.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-time.After(s.cfg.AckWait):
		err = fmt.Errorf("nats: subscriptions did not end within %s of Close", s.cfg.AckWait)
	}
	if derr := s.conn.Drain(); derr != nil && !errors.Is(derr, nc.ErrConnectionClosed) {
		err = errors.Join(err, fmt.Errorf("nats: close connection: %w", derr))
	}
	return err
}
