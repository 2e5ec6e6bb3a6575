package amqp

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
)

// ErrPublisherClosed is returned by Publish after Close.
var ErrPublisherClosed = errors.New("amqp: publisher is closed")

// Publisher publishes to RabbitMQ through Watermill's publisher, over one
// connection that reconnects by itself and a pool of Config.ChannelPoolSize
// channels, and repairs that pool after a connection loss.
//
// The repair works around a fault of watermill-amqp v3.0.2: when a pooled
// channel cannot be reopened (the connection dropped a moment before), the
// channel leaves the pool for good, so after a few broker outages every
// Publish blocks forever, and Close panics on the channel left behind
// (ThreeDotsLabs/watermill-amqp pull request #37). Publisher sees that
// failure (Watermill's "cannot open channel" error, returned before anything
// was sent), retires the Watermill publisher, which releases every caller
// waiting on its pool, and sends the messages again through a new one on the
// same connection.
type Publisher struct {
	cfg    wamqp.Config
	logger watermill.LoggerAdapter
	conn   *wamqp.ConnectionWrapper
	// sharedConn: conn belongs to another Publisher (a reply publisher,
	// NewReplyPublisher); Close leaves it open.
	sharedConn bool

	current atomic.Pointer[wamqp.Publisher] // nil after a retirement, until a Publish opens a new pool
	mu      sync.Mutex                      // serialises opening, retiring and closing
	closed  bool
	retired atomic.Int64
}

// NewPublisher connects a publisher and opens its channels. logger may be
// nil.
func NewPublisher(cfg Config, logger watermill.LoggerAdapter) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger = nopIfNil(logger)
	wc := cfg.WatermillConfig()
	conn, err := wamqp.NewConnection(wc.Connection, logger)
	if err != nil {
		return nil, fmt.Errorf("amqp: publisher: %w", err)
	}
	p := &Publisher{cfg: wc, logger: logger, conn: conn}
	if _, err := p.open(); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return p, nil
}

// Publish sends messages to topic, one after the other; with publisher
// confirms (the default) it returns once RabbitMQ has taken each of them.
func (p *Publisher) Publish(topic string, messages ...*message.Message) error {
	var err error
	// A Watermill publisher refuses with "cannot open channel" before it
	// sends anything, so sending again through a new one never duplicates.
	for range 3 {
		var wp *wamqp.Publisher
		if wp, err = p.open(); err != nil {
			return err
		}
		err = wp.Publish(topic, messages...)
		if !channelUnavailable(err) {
			return err
		}
		p.retire(wp)
	}
	return err
}

// channelUnavailable reports whether err is Watermill's refusal to hand out
// a channel: the pooled channel could not be reopened, or the pool was
// retired while the caller waited for it.
func channelUnavailable(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "cannot open channel")
}

// open returns the Watermill publisher in use, opening a new one (a new
// channel pool on the same connection) after a retirement.
func (p *Publisher) open() (*wamqp.Publisher, error) {
	if wp := p.current.Load(); wp != nil {
		return wp, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrPublisherClosed
	}
	if wp := p.current.Load(); wp != nil {
		return wp, nil
	}
	if !p.conn.IsConnected() {
		return nil, errors.New("amqp: publisher: not connected to RabbitMQ (reconnecting)")
	}
	wp, err := wamqp.NewPublisherWithConnection(p.cfg, p.logger, p.conn)
	if err != nil {
		return nil, fmt.Errorf("amqp: publisher: opening channels: %w", err)
	}
	p.current.Store(wp)
	return wp, nil
}

// retire stops using wp, if it is still the publisher in use, and closes
// its channel pool, which fails every Publish waiting on it.
func (p *Publisher) retire(wp *wamqp.Publisher) {
	p.mu.Lock()
	if !p.current.CompareAndSwap(wp, nil) {
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	p.retired.Add(1)
	p.logger.Info("AMQP publisher lost a pooled channel; opening a new channel pool", nil)
	if err := closePool(wp); err != nil {
		p.logger.Debug("Closing the retired AMQP channel pool", watermill.LogFields{"error": err.Error()})
	}
}

// closePool closes a Watermill publisher created on a shared connection,
// which closes only its channels. watermill-amqp v3.0.2 panics there on a
// channel whose reopening failed; that channel holds nothing to release.
func closePool(wp *wamqp.Publisher) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("amqp: closing a channel pool: %v", r)
		}
	}()
	return wp.Close()
}

// IsConnected reports whether the connection to RabbitMQ is up.
func (p *Publisher) IsConnected() bool { return p.conn.IsConnected() }

// Close closes the channels, then the connection once the Publish calls in
// flight have returned (as Watermill's publisher does, a call still waiting
// for its confirm fails). Publish fails with ErrPublisherClosed afterwards.
func (p *Publisher) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	wp := p.current.Swap(nil)
	p.mu.Unlock()
	var errs []error
	if wp != nil {
		errs = append(errs, closePool(wp))
	}
	if !p.sharedConn {
		errs = append(errs, p.conn.Close())
	}
	return errors.Join(errs...)
}
