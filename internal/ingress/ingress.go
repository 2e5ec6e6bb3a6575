// Package ingress gives every handler of one App every message of its topic,
// whatever the transport: the App subscribes once per topic (so the App's
// replicas compete through the transport's consumer group) and a Hub hands
// each message to every handler registered for that topic and message type.
//
// Each handler is a Watermill router handler of its own, with its own
// middleware chain (retries, dead letters, timeouts), subscribed to a
// [Member] of the Hub. The Hub acknowledges the transport's message once
// every handler it was given to acknowledged its copy. A handler that nacks
// its copy gets it again from the Hub (after a short backoff) while the
// handlers that acknowledged are not run again; only when every handler
// nacked in the same round is the transport's message nacked, so the
// transport redelivers it (perhaps to another replica).
//
// Shutdown: when the router closes, the members close; messages not yet
// handed to a handler are held and nacked as soon as the handlers in flight
// finished, then the transport subscription is cancelled ([Hub.Close]).
package ingress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/router"
)

// Options configure a [Hub]. The zero value is usable.
type Options struct {
	// Logger receives the Hub's warnings; nil means slog.Default().
	Logger *slog.Logger
	// Expand, when set, turns one transport message into the messages
	// handlers see (for example a CloudEvents structured batch into one
	// message per event). It returns (nil, nil) to keep the message as it
	// is; on error the message is handed on unchanged, so the handler's
	// decoder reports the fault and the dead-letter step records it.
	Expand func(*message.Message) ([]*message.Message, error)
	// Prepare, when set, is called with the topic and each transport
	// message before it is expanded and routed (the App stamps the assumed
	// envelope of raw messages there; see router.AssumeEnvelope).
	Prepare func(topic string, msg *message.Message)
	// TypeOf returns the message type a message is routed by; nil means
	// its ce_type metadata.
	TypeOf func(*message.Message) string
	// ResendMin and ResendMax bound the backoff before a copy a handler
	// nacked is handed to it again; 0 means 50ms and 5s.
	ResendMin, ResendMax time.Duration
}

// Hub shares one transport subscription per topic among the members of that
// topic. Build it with [New]; add members with [Hub.Join] before the router
// subscribes them.
type Hub struct {
	sub  message.Subscriber
	opts Options
	log  *slog.Logger

	ctx    context.Context // upstream subscriptions; cancelled by Close
	cancel context.CancelFunc

	mu      sync.Mutex
	topics  map[string]*topic
	closed  bool
	failure chan error // a subscription that ended on its own
	wg      sync.WaitGroup
}

// New returns a Hub on sub.
func New(sub message.Subscriber, opts Options) *Hub {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ResendMin <= 0 {
		opts.ResendMin = 50 * time.Millisecond
	}
	if opts.ResendMax < opts.ResendMin {
		opts.ResendMax = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Hub{
		sub:     sub,
		opts:    opts,
		log:     opts.Logger,
		ctx:     ctx,
		cancel:  cancel,
		topics:  make(map[string]*topic),
		failure: make(chan error, 1),
	}
}

// SubscriptionEndedError reports a transport subscription that ended while
// the App was not shutting down: nothing is consumed from its topic any more.
type SubscriptionEndedError struct {
	Topic string
}

// Error names the topic.
func (e *SubscriptionEndedError) Error() string {
	return fmt.Sprintf("hexeract: the transport ended the subscription to topic %q on its own (connection lost for good, or the subscriber was closed); restart the App", e.Topic)
}

// Failed delivers the first subscription that ended on its own.
func (h *Hub) Failed() <-chan error { return h.failure }

// topic is one upstream subscription and its members.
type topic struct {
	hub        *Hub
	name       string
	members    []*Member
	subscribed int  // members whose Subscribe was called
	started    bool // the upstream subscription runs
	cancel     context.CancelFunc
	held       []*message.Message // received after every member closed
	inflight   sync.WaitGroup
	heldMu     sync.Mutex
}

// Join adds a member for handler name on topic, taking messages of wire type
// typ ("" takes every message). It fails once the topic's subscription has
// started: every handler of a topic must be added before the router runs it.
func (h *Hub) Join(topicName, name, typ string) (*Member, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errors.New("hexeract: the App is closed")
	}
	t := h.topics[topicName]
	if t == nil {
		t = &topic{hub: h, name: topicName}
		h.topics[topicName] = t
	}
	if t.started {
		return nil, fmt.Errorf("hexeract: handler %q cannot join topic %q, which the App already consumes; add every handler of a topic before App.Run", name, topicName)
	}
	m := &Member{topic: t, name: name, typ: typ, closing: make(chan struct{})}
	t.members = append(t.members, m)
	return m, nil
}

// Leave removes a member that was never subscribed (its handler could not
// be added to the router).
func (h *Hub) Leave(m *Member) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := m.topic
	for i, x := range t.members {
		if x == m {
			t.members = append(t.members[:i], t.members[i+1:]...)
			break
		}
	}
}

// Close nacks the messages held since the members closed, ends every
// upstream subscription and waits (up to timeout) for the dispatch of the
// messages in flight to finish. Call it after the router closed, so the
// handlers in flight have acknowledged. It does not close the subscriber.
func (h *Hub) Close(timeout time.Duration) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	topics := make([]*topic, 0, len(h.topics))
	for _, t := range h.topics {
		topics = append(topics, t)
	}
	h.mu.Unlock()
	for _, t := range topics {
		for _, m := range t.members {
			m.close()
		}
		t.nackHeld()
	}
	h.cancel()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("hexeract: messages still in flight %s after the router closed", timeout)
	}
}

func (t *topic) nackHeld() {
	t.heldMu.Lock()
	held := t.held
	t.held = nil
	t.heldMu.Unlock()
	for _, msg := range held {
		msg.Nack()
	}
}

// Member is the subscriber of one handler: a Watermill Subscriber that only
// serves its topic.
type Member struct {
	topic *topic
	name  string
	typ   string

	mu      sync.RWMutex // held for reading while sending on out
	out     chan *message.Message
	ctx     context.Context // the router's context for the handler
	closing chan struct{}
	once    sync.Once
}

// Subscribe returns the member's channel. When the last member of the topic
// subscribes, the Hub subscribes to the transport.
func (m *Member) Subscribe(ctx context.Context, topicName string) (<-chan *message.Message, error) {
	t := m.topic
	if topicName != t.name {
		return nil, fmt.Errorf("hexeract: handler %q subscribed to %q but joined %q", m.name, topicName, t.name)
	}
	h := t.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errors.New("hexeract: the App is closed")
	}
	if m.out != nil {
		return nil, fmt.Errorf("hexeract: handler %q subscribed twice", m.name)
	}
	m.out = make(chan *message.Message)
	m.ctx = ctx
	go func() {
		// The router cancels ctx when the handler stops.
		select {
		case <-ctx.Done():
			m.close()
		case <-m.closing:
		}
	}()
	t.subscribed++
	if t.subscribed < len(t.members) || t.started {
		return m.out, nil
	}
	upCtx, cancel := context.WithCancel(h.ctx)
	upstream, err := h.sub.Subscribe(upCtx, t.name)
	if err != nil {
		cancel()
		return nil, err
	}
	t.started = true
	t.cancel = cancel
	h.wg.Add(1)
	go t.consume(upstream)
	return m.out, nil
}

// Close closes the member: the router calls it when it closes. Messages
// already handed to the handler are still acknowledged by it.
func (m *Member) Close() error {
	m.close()
	return nil
}

func (m *Member) close() {
	m.once.Do(func() {
		close(m.closing)
		m.mu.Lock()
		if m.out != nil {
			close(m.out)
		}
		m.mu.Unlock()
	})
}

// send hands msg to the member's handler; false when the member is closed.
func (m *Member) send(msg *message.Message) bool {
	select {
	case <-m.closing:
		return false
	default:
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.out == nil {
		return false
	}
	msg.SetContext(handlerContext{values: msg.Context(), life: m.ctx})
	select {
	case m.out <- msg:
		return true
	case <-m.closing:
		return false
	}
}

func (m *Member) closed() bool {
	select {
	case <-m.closing:
		return true
	default:
		return false
	}
}

// consume reads the upstream subscription until it ends.
func (t *topic) consume(upstream <-chan *message.Message) {
	h := t.hub
	defer h.wg.Done()
	for msg := range upstream {
		t.inflight.Add(1)
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			defer t.inflight.Done()
			t.dispatch(msg)
		}()
	}
	h.mu.Lock()
	closing := h.closed
	h.mu.Unlock()
	if closing {
		return
	}
	// The transport ended the subscription by itself: stop the members
	// (their router handlers end) and tell the App.
	for _, m := range t.members {
		m.close()
	}
	select {
	case h.failure <- &SubscriptionEndedError{Topic: t.name}:
	default:
	}
}

// allClosed reports whether every member of the topic is closed.
func (t *topic) allClosed() bool {
	for _, m := range t.members {
		if !m.closed() {
			return false
		}
	}
	return true
}

// targets returns the members that take msg: those of its type and those
// that take every type. A message no member takes (an unknown or missing
// type) goes to the first member only, whose decoder rejects it once; so
// does a message its transport could not unmarshal (see dispatch).
func (t *topic) targets(msg *message.Message) []*Member {
	if len(t.members) == 1 {
		return t.members
	}
	var typ string
	if typeOf := t.hub.opts.TypeOf; typeOf != nil {
		typ = typeOf(msg)
	} else {
		typ = msg.Metadata.Get(router.KeyType)
	}
	var out []*Member
	for _, m := range t.members {
		if m.typ == "" || m.typ == typ {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return t.members[:1]
	}
	return out
}

// dispatch hands msg to its members and settles it upstream.
func (t *topic) dispatch(msg *message.Message) {
	if prepare := t.hub.opts.Prepare; prepare != nil {
		prepare(t.name, msg)
	}
	units := []*message.Message{msg}
	derived := false
	if msg.Metadata.Get(router.KeyTransportError) != "" {
		// The transport could not unmarshal it: whatever type or content
		// type it claims, it is neither expanded nor shared, and its one
		// member's dead-letter step moves it aside once.
		if t.allClosed() {
			t.hold(msg)
			return
		}
		t.passThrough(msg, t.members[0])
		return
	}
	if expand := t.hub.opts.Expand; expand != nil {
		if xs, err := expand(msg); err == nil && xs != nil {
			units, derived = xs, true
		}
	}
	if t.allClosed() {
		t.hold(msg)
		return
	}
	if !derived {
		if targets := t.targets(msg); len(targets) == 1 {
			t.passThrough(msg, targets[0])
			return
		}
	}
	var deliveries []delivery
	for _, u := range units {
		for _, m := range t.targets(u) {
			deliveries = append(deliveries, delivery{unit: u, member: m})
		}
	}
	if t.deliverAll(deliveries) {
		msg.Ack()
	} else {
		msg.Nack()
	}
}

// hold keeps a message that arrived after every member closed, to be
// nacked when the Hub closes (nacking it now would have it redelivered to
// this consumer at once, in a loop, until the subscription ends).
func (t *topic) hold(msg *message.Message) {
	t.heldMu.Lock()
	defer t.heldMu.Unlock()
	t.hub.mu.Lock()
	closed := t.hub.closed
	t.hub.mu.Unlock()
	if closed {
		msg.Nack()
		return
	}
	t.held = append(t.held, msg)
}

// passThrough hands the transport's message itself to its only member,
// and waits for the handler's outcome (so Close knows it is in flight).
func (t *topic) passThrough(msg *message.Message, m *Member) {
	if !m.send(msg) {
		t.hold(msg)
		return
	}
	select {
	case <-msg.Acked():
	case <-msg.Nacked():
	case <-t.hub.ctx.Done():
	}
}

type delivery struct {
	unit   *message.Message
	member *Member
}

// deliverAll hands a copy of each delivery's unit to its member, in rounds:
// a round's nacked copies are handed out again after a backoff. It reports
// true when every copy was acknowledged, false when the message must be
// nacked upstream: every copy of the first round was nacked, or the members
// closed before every copy was acknowledged.
func (t *topic) deliverAll(pending []delivery) bool {
	h := t.hub
	wait := h.opts.ResendMin
	type outcome struct {
		d  delivery
		ok bool
	}
	for round := 0; ; round++ {
		results := make(chan outcome, len(pending))
		sent := 0
		for _, d := range pending {
			c := d.unit.Copy()
			c.SetContext(d.unit.Context())
			if !d.member.send(c) {
				// A member closed before its copy could be handed over:
				// the App is shutting down. Give the message back once
				// the copies in flight are settled.
				continue
			}
			sent++
			go func() {
				select {
				case <-c.Acked():
					results <- outcome{d, true}
				case <-c.Nacked():
					results <- outcome{d, false}
				case <-h.ctx.Done():
					results <- outcome{d, false}
				}
			}()
		}
		var failed []delivery
		for range sent {
			if o := <-results; !o.ok {
				failed = append(failed, o.d)
			}
		}
		switch {
		case sent < len(pending):
			return false
		case len(failed) == 0:
			return true
		case round == 0 && len(failed) == len(pending):
			// Nobody succeeded: let the transport redeliver it.
			return false
		}
		// Hand the nacked copies out again; those that succeeded are done.
		select {
		case <-time.After(wait):
		case <-h.ctx.Done():
			return false
		}
		wait = min(2*wait, h.opts.ResendMax)
		pending = failed
	}
}

// handlerContext is the context of a message handed to a member: the
// transport's values (a partition, an offset) with the life of the member's
// handler, which ends when the router closes. Handlers thus see the App's
// shutdown as they would if the transport's subscription closed.
//
// Value asks the handler's context first: the context package looks its
// cancellation up through Value, and finding the handler's own lets
// context.WithTimeout and friends on a message context (the Timeout
// middleware's, per attempt) hook into it without a goroutine each.
type handlerContext struct {
	values context.Context
	life   context.Context
}

func (c handlerContext) Deadline() (time.Time, bool) { return c.life.Deadline() }
func (c handlerContext) Done() <-chan struct{}       { return c.life.Done() }
func (c handlerContext) Err() error                  { return c.life.Err() }
func (c handlerContext) Value(key any) any {
	if v := c.life.Value(key); v != nil {
		return v
	}
	return c.values.Value(key)
}
