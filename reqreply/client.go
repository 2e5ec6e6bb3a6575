package reqreply

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/internal/msgtrace"
	"github.com/hexeract/hexeract/router"
)

// DefaultTimeout is how long a request waits for its reply when neither its
// context nor [Timeout] sets a deadline.
const DefaultTimeout = 30 * time.Second

// ReplyTopicPrefix starts the per-instance reply topic of the default topic
// naming (router.DefaultTopics),
// "hexeract.replies.<instance id>".
const ReplyTopicPrefix = router.DefaultReplyTopicPrefix

// Client is the calling side of request/reply for one App: one subscription
// to the App instance's own reply topic and a table of pending requests keyed
// by request id. Every request of the App goes through its single Client, so
// the process keeps one reply subscriber however many requests are in flight.
//
// Where the replies travel is derived from the App's transport (see
// [ReplyTransport]): on RabbitMQ (adapters/amqp) an exclusive, auto-deleted
// queue of the client's own, on NATS (adapters/nats) a core NATS
// subscription; on every other transport the reply topic is an ordinary
// topic of the App's subscriber. [WithReplySubscriber] overrides it.
//
// [Request] creates the App's Client on first use with the defaults; call
// [NewClient] first to configure it. The Client belongs to its App: it
// subscribes when the App runs ([hexeract.App.Run]), or at its first request
// if that comes earlier, and [hexeract.App.Close] closes it. A Client is safe
// for concurrent use.
type Client struct {
	app            *hexeract.App
	publisher      message.Publisher
	subscriber     message.Subscriber
	replyTopic     string
	defaultTimeout time.Duration
	tracer         trace.Tracer
	state          *appState
	// rt is the App's transport's reply channel the client opens its
	// subscriber from (subscriber is nil then), and replyVia its scheme,
	// sent with every request; both are empty otherwise.
	rt       ReplyTransport
	replyVia string
	// owned is the subscriber opened from rt, closed by Close.
	owned     message.Subscriber
	closeOnce sync.Once
	ctx       context.Context // the reply subscription's; cancel ends it
	cancel    context.CancelFunc
	done      chan struct{}
	started   atomic.Bool // subscribed (set under mu)

	mu      sync.Mutex
	pending map[string]*call
	closed  bool
}

// call is one pending request. ch receives its reply (and a receipt first
// when one was asked for).
type call struct {
	ch       chan *message.Message // room for one receipt and the reply
	accepted atomic.Bool           // a receipt was delivered
}

// ClientOption configures a [Client].
type ClientOption func(*clientConfig)

type clientConfig struct {
	replyTopic     string
	subscriber     message.Subscriber
	publisher      message.Publisher
	defaultTimeout time.Duration
	tp             trace.TracerProvider
}

// WithReplyTopic sets the topic this App instance receives its replies on. It
// must be unique per running instance; the default is
// "hexeract.replies.<random instance id>".
func WithReplyTopic(topic string) ClientOption { return func(c *clientConfig) { c.replyTopic = topic } }

// ReplyTopic is the former name of [WithReplyTopic].
//
// Deprecated: use WithReplyTopic.
func ReplyTopic(topic string) ClientOption { return WithReplyTopic(topic) }

// WithReplySubscriber sets the subscriber replies are consumed with. The
// default is derived from the App's transport (see [ReplyTransport]): a
// private reply channel where the transport has one (RabbitMQ, NATS), the
// App's subscriber otherwise. Give one configured for a private,
// short-lived destination when the default does not suit, for example a
// consumer group of its own on Kafka; the responders then need a matching
// [WithReplyPublisher] when the App's publisher cannot reach it. The client
// does not close it.
func WithReplySubscriber(s message.Subscriber) ClientOption {
	return func(c *clientConfig) { c.subscriber = s }
}

// ReplySubscriber is the former name of [WithReplySubscriber].
//
// Deprecated: use WithReplySubscriber.
func ReplySubscriber(s message.Subscriber) ClientOption { return WithReplySubscriber(s) }

// WithRequestPublisher sets the publisher requests are sent with; the default is
// the App's publisher.
func WithRequestPublisher(p message.Publisher) ClientOption {
	return func(c *clientConfig) { c.publisher = p }
}

// RequestPublisher is the former name of [WithRequestPublisher].
//
// Deprecated: use WithRequestPublisher.
func RequestPublisher(p message.Publisher) ClientOption { return WithRequestPublisher(p) }

// WithDefaultRequestTimeout sets how long requests without a deadline wait;
// the default is [DefaultTimeout].
func WithDefaultRequestTimeout(d time.Duration) ClientOption {
	return func(c *clientConfig) { c.defaultTimeout = d }
}

// DefaultRequestTimeout is the former name of [WithDefaultRequestTimeout].
//
// Deprecated: use WithDefaultRequestTimeout.
func DefaultRequestTimeout(d time.Duration) ClientOption { return WithDefaultRequestTimeout(d) }

// WithTracerProvider sets the OpenTelemetry tracer provider of the request
// spans; the default is the global one ([otel.GetTracerProvider]).
func WithTracerProvider(tp trace.TracerProvider) ClientOption {
	return func(c *clientConfig) { c.tp = tp }
}

// TracerProvider is the former name of [WithTracerProvider].
//
// Deprecated: use WithTracerProvider.
func TracerProvider(tp trace.TracerProvider) ClientOption { return WithTracerProvider(tp) }

// NewClient creates app's request/reply client. The client belongs to app:
// it subscribes to its reply topic when app runs (at once when app is
// already running), or at its first request if that comes first, so no
// reply can be missed and the App does not need to be running to send
// requests; [hexeract.App.Close] closes it. An App has at most one Client:
// NewClient fails if app already has one (created by an earlier NewClient
// or by the first [Request]) that is not closed, and once app is closed.
func NewClient(app *hexeract.App, opts ...ClientOption) (*Client, error) {
	if app == nil {
		return nil, errors.New("reqreply: NewClient with a nil App")
	}
	st, err := stateOf(app)
	if err != nil {
		return nil, fmt.Errorf("reqreply: NewClient: %w", err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return nil, errors.New("reqreply: NewClient on a closed App; build a new App with hexeract.New")
	}
	if st.client != nil && !st.client.isClosed() {
		return nil, errors.New("reqreply: this App already has a request/reply client; call reqreply.NewClient once, before the first reqreply.Request")
	}
	c, err := newClient(app, st, opts)
	if err != nil {
		return nil, err
	}
	if st.started {
		if err := c.start(); err != nil {
			return nil, err
		}
	}
	st.client = c
	return c, nil
}

// ClientFor returns app's Client, creating it with the defaults when app has
// none yet. Once the Client is closed, ClientFor keeps returning it (and
// requests fail with [ErrClosed]) until [NewClient] creates a new one: a
// Client configured with options is never silently replaced by a default one.
func ClientFor(app *hexeract.App) (*Client, error) {
	if app == nil {
		return nil, errors.New("reqreply: nil App")
	}
	st, err := stateOf(app)
	if err != nil {
		return nil, fmt.Errorf("reqreply: %w", err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.client != nil {
		return st.client, nil
	}
	if st.closed {
		return nil, errors.New("reqreply: the App is closed; build a new App with hexeract.New")
	}
	c, err := newClient(app, st, nil)
	if err != nil {
		return nil, err
	}
	if st.started {
		if err := c.start(); err != nil {
			return nil, err
		}
	}
	st.client = c
	return c, nil
}

func newClient(app *hexeract.App, st *appState, opts []ClientOption) (*Client, error) {
	cfg := clientConfig{defaultTimeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&cfg)
	}
	if cfg.publisher == nil {
		cfg.publisher = app.Publisher()
	}
	// The reply channel is derived from the transport the requests go on,
	// unless a reply subscriber was given.
	var rt ReplyTransport
	if cfg.subscriber == nil {
		if rt = replyTransportOf(cfg.publisher); rt == nil {
			cfg.subscriber = app.Subscriber()
		}
	}
	if cfg.subscriber == nil && rt == nil {
		return nil, errors.New("reqreply: the client needs a subscriber for its replies; give the App one (hexeract.WithSubscriber) or pass reqreply.WithReplySubscriber")
	}
	if cfg.publisher == nil {
		return nil, errors.New("reqreply: the client needs a publisher for its requests; give the App one (hexeract.WithPublisher) or pass reqreply.WithRequestPublisher")
	}
	if cfg.defaultTimeout <= 0 {
		return nil, fmt.Errorf("reqreply: DefaultRequestTimeout must be positive, got %s", cfg.defaultTimeout)
	}
	if cfg.replyTopic == "" {
		cfg.replyTopic = app.Topics().ReplyTopic(strings.ReplaceAll(uuid.NewString(), "-", "")[:16])
	}
	if rt == nil {
		// A derived reply channel does not go through the App's
		// transport, whose topic rules do not apply to it.
		if err := app.CheckTopic(cfg.replyTopic); err != nil {
			return nil, fmt.Errorf("reqreply: reply topic: %w", err)
		}
	}
	if cfg.tp == nil {
		cfg.tp = otel.GetTracerProvider()
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		app:            app,
		publisher:      cfg.publisher,
		subscriber:     cfg.subscriber,
		replyTopic:     cfg.replyTopic,
		defaultTimeout: cfg.defaultTimeout,
		tracer:         cfg.tp.Tracer(instrumentationName),
		state:          st,
		rt:             rt,
		ctx:            ctx,
		cancel:         cancel,
		done:           make(chan struct{}),
		pending:        make(map[string]*call),
	}
	if rt != nil {
		c.replyVia = rt.ReplyScheme()
	}
	return c, nil
}

// start subscribes to the reply topic, once; it fails with [ErrClosed]
// after Close.
func (c *Client) start() error {
	if c.started.Load() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.closedError()
	}
	if c.started.Load() {
		return nil
	}
	sub := c.subscriber
	if c.rt != nil {
		s, err := c.rt.NewReplySubscriber()
		if err != nil {
			return fmt.Errorf("reqreply: open the reply subscriber of the App's transport (%s): %w", c.replyVia, err)
		}
		sub = s
	}
	replies, err := sub.Subscribe(c.ctx, c.replyTopic)
	if err != nil {
		if c.rt != nil {
			err = errors.Join(err, sub.Close())
		}
		return fmt.Errorf("reqreply: subscribe to reply topic %q: %w", c.replyTopic, err)
	}
	if c.rt != nil {
		c.owned = sub
	}
	c.started.Store(true)
	go c.receive(replies)
	return nil
}

// ReplyTopic returns the topic this client receives replies on.
func (c *Client) ReplyTopic() string { return c.replyTopic }

// Pending returns the number of requests waiting for their reply.
func (c *Client) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// closeTimeout bounds how long Close waits for the subscription to end.
const closeTimeout = 30 * time.Second

// Close ends the reply subscription and waits for its goroutine to return,
// then closes the reply subscriber it derived from the App's transport, if
// it did (on RabbitMQ that removes its reply queue). Requests still
// waiting, and later requests through the same App, fail with [ErrClosed];
// call [NewClient] to create a new Client. The Client also closes when its
// subscription ends on its own, for example because the transport was
// closed, and [hexeract.App.Close] closes it.
func (c *Client) Close() error {
	c.mu.Lock()
	started := c.started.Load()
	if !started {
		c.closed = true
	}
	c.mu.Unlock()
	var err error
	if started && c.owned != nil {
		// The derived subscriber is closed before the subscription's
		// context is cancelled: watermill-amqp's subscription, cancelled
		// first, may consume its queue once more before it notices.
		c.closeOnce.Do(func() {
			if cerr := c.owned.Close(); cerr != nil {
				err = fmt.Errorf("reqreply: close the reply subscriber: %w", cerr)
			}
		})
	}
	c.cancel()
	if !started {
		return nil
	}
	select {
	case <-c.done:
	case <-time.After(closeTimeout):
		err = errors.Join(err, fmt.Errorf("reqreply: the subscription to %q did not end within %s of Close", c.replyTopic, closeTimeout))
	}
	return err
}

// ReplyVia returns the scheme of the reply channel the client derived from
// the App's transport ("amqp.direct", "nats.core"; see [ReplyTransport]),
// or "" when its replies come through the App's subscriber or the one
// given with [WithReplySubscriber].
func (c *Client) ReplyVia() string { return c.replyVia }

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// receive dispatches replies to their callers until the subscription ends.
func (c *Client) receive(replies <-chan *message.Message) {
	defer close(c.done)
	for msg := range replies {
		c.dispatch(msg)
	}
	c.mu.Lock()
	c.closed = true
	pending := c.pending
	c.pending = make(map[string]*call)
	c.mu.Unlock()
	for _, p := range pending {
		close(p.ch)
	}
}

func (c *Client) dispatch(msg *message.Message) {
	id := msg.Metadata.Get(router.KeyRequestID)
	accepted := msg.Metadata.Get(router.KeyReplyStatus) == StatusAccepted
	c.mu.Lock()
	p := c.pending[id]
	if p != nil && !accepted {
		delete(c.pending, id)
	}
	c.mu.Unlock()
	if p == nil {
		if !accepted {
			c.state.late.Add(1)
			c.app.Logger().Debug("reqreply: dropped a reply nobody waits for", "request_id", id, "reply_topic", c.replyTopic)
		}
		msg.Ack()
		return
	}
	// At most one receipt and one reply reach p.ch, so the send never blocks.
	if !accepted || p.accepted.CompareAndSwap(false, true) {
		p.ch <- msg
	}
	msg.Ack()
}

// forget removes a pending request after its caller gave up. A reply that
// arrived in between is dropped and counted.
func (c *Client) forget(id string, p *call) {
	c.mu.Lock()
	if c.pending[id] == p {
		delete(c.pending, id)
	}
	c.mu.Unlock()
	for {
		select {
		case m, ok := <-p.ch:
			if ok && m.Metadata.Get(router.KeyReplyStatus) != StatusAccepted {
				c.state.late.Add(1)
			}
			if ok {
				continue
			}
		default:
		}
		return
	}
}

var clientSpan = trace.WithSpanKind(trace.SpanKindClient) //nolint:gochecknoglobals // an immutable span start option

// spanError records err on span and returns it.
func spanError(span trace.Span, err error) error {
	if span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}

// RequestOption configures one request.
type RequestOption func(*requestConfig)

type requestConfig struct {
	timeout     time.Duration
	topic       string
	noResponder time.Duration
}

// Timeout bounds how long the request waits for its reply. The earlier of
// this and the context's deadline applies, and travels with the request.
func Timeout(d time.Duration) RequestOption { return func(c *requestConfig) { c.timeout = d } }

// Topic sends the request on topic instead of the topic the App gives the
// request type (see [WithHandlerTopic]).
func Topic(topic string) RequestOption { return func(c *requestConfig) { c.topic = topic } }

// NoResponderTimeout asks the responder to confirm receipt as soon as it
// picks the request up, and fails the request with [ErrNoResponder] when no
// receipt (or reply) arrives within d. It costs one extra message per
// request; use it where telling "nobody listens" apart from "slow" matters.
func NoResponderTimeout(d time.Duration) RequestOption {
	return func(c *requestConfig) { c.noResponder = d }
}

// Request sends req and waits for its reply, decoded as a Resp. It uses
// app's [Client] (created on first use). The deadline is the earliest of the
// context's, [Timeout] and the client's default; it travels with the request.
//
// The error is a [*RemoteError] when the responder's handler failed,
// [ErrTimeout] when no reply came in time, [ErrNoResponder] (with
// [NoResponderTimeout]), the context's error when ctx was cancelled (a ctx
// already done sends nothing), [ErrClosed], or a publish or decode error. Resp may be an interface type, as with [RequestAny].
func Request[Req, Resp router.Message](ctx context.Context, app *hexeract.App, req Req, opts ...RequestOption) (Resp, error) {
	var zero Resp
	c, err := ClientFor(app)
	if err != nil {
		return zero, err
	}
	return Call[Req, Resp](ctx, c, req, opts...)
}

// Call is [Request] through a given client.
func Call[Req, Resp router.Message](ctx context.Context, c *Client, req Req, opts ...RequestOption) (Resp, error) {
	var zero Resp
	reply, err := c.roundTrip(ctx, req, opts)
	if err != nil {
		return zero, err
	}
	return decodeReply[Resp](c, reply, req.MessageType())
}

// RequestAny sends req and returns the reply as whatever registered message
// type it is, for requests answered by one of several types: switch on the
// result's type. Register the possible reply types in the App's registry
// first (router.Register[OrderAccepted](app.Registry())); a responder in the
// same App registers its concrete Resp type itself.
func RequestAny[Req router.Message](ctx context.Context, app *hexeract.App, req Req, opts ...RequestOption) (router.Message, error) {
	return Request[Req, router.Message](ctx, app, req, opts...)
}

func (c *Client) roundTrip(ctx context.Context, req router.Message, opts []RequestOption) (*message.Message, error) {
	if req == nil {
		return nil, errors.New("reqreply: nil request")
	}
	var cfg requestConfig
	for _, opt := range opts {
		opt(&cfg)
	}
	reqType := req.MessageType()
	timeout := cfg.timeout
	if timeout <= 0 {
		timeout = c.defaultTimeout
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	ctx, span := c.tracer.Start(ctx, reqType+" request", clientSpan)
	defer span.End()
	recording := span.IsRecording()
	if recording {
		span.SetAttributes(attribute.String("hexeract.message.type", reqType))
	}
	fail := func(err error) (*message.Message, error) { return nil, spanError(span, err) }

	msg, err := c.app.NewMessage(ctx, req)
	if err != nil {
		return fail(fmt.Errorf("reqreply: encode %s: %w", reqType, err))
	}
	id := msg.UUID
	md := msg.Metadata
	md[router.KeyReplyTo] = c.replyTopic
	md[router.KeyRequestID] = id
	md[router.KeyRequestDeadline] = formatDeadline(deadline)
	if c.replyVia != "" {
		md[router.KeyReplyVia] = c.replyVia
	}
	if cfg.noResponder > 0 {
		md[router.KeyReplyAck] = "1"
	}
	msgtrace.Inject(ctx, msg, msgtrace.TraceContext)
	if recording {
		span.SetAttributes(attribute.String("messaging.message.id", id))
	}

	topic := cfg.topic
	if topic == "" {
		topic = c.app.TopicFor(req)
	}
	// A caller that already gave up sends nothing: the responder would
	// run the handler (and its side effects) for nobody.
	if err := ctx.Err(); err != nil {
		return fail(c.contextError(err, reqType, topic, id, deadline))
	}
	if err := c.start(); err != nil {
		return fail(err)
	}
	p := &call{ch: make(chan *message.Message, 2)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fail(c.closedError())
	}
	c.pending[id] = p
	c.mu.Unlock()

	c.state.requests.Add(1)
	if err := c.publisher.Publish(topic, msg); err != nil {
		c.forget(id, p)
		return fail(fmt.Errorf("reqreply: publish %s on %q: %w", reqType, topic, err))
	}

	var noResponder <-chan time.Time
	if cfg.noResponder > 0 {
		t := time.NewTimer(cfg.noResponder)
		defer t.Stop()
		noResponder = t.C
	}
	for {
		select {
		case reply, ok := <-p.ch:
			if !ok {
				return fail(c.closedError())
			}
			if reply.Metadata.Get(router.KeyReplyStatus) == StatusAccepted {
				noResponder = nil
				continue
			}
			c.state.replies.Add(1)
			return reply, nil
		case <-noResponder:
			c.forget(id, p)
			return fail(fmt.Errorf("%w: %s on %q within %s (request %s)", ErrNoResponder, reqType, topic, cfg.noResponder, id))
		case <-ctx.Done():
			c.forget(id, p)
			return fail(c.contextError(ctx.Err(), reqType, topic, id, deadline))
		}
	}
}

// contextError is the error of a request whose context ended: [ErrTimeout]
// at the deadline (counted), the context's error otherwise.
func (c *Client) contextError(err error, reqType, topic, id string, deadline time.Time) error {
	if errors.Is(err, context.DeadlineExceeded) {
		c.state.timeouts.Add(1)
		return fmt.Errorf("%w: %s on %q (request %s, deadline %s): %w", ErrTimeout, reqType, topic, id, deadline.Format(time.RFC3339Nano), err)
	}
	return err
}

// closedError is [ErrClosed] with the reply topic and what to do.
func (c *Client) closedError() error {
	return fmt.Errorf("%w: the subscription to reply topic %q has ended (Client.Close, or the App or its transport was closed); create a new client with reqreply.NewClient (a new App after App.Close)", ErrClosed, c.replyTopic)
}

// decodeReply turns a reply into a Resp or a *RemoteError.
func decodeReply[Resp router.Message](c *Client, reply *message.Message, reqType string) (Resp, error) {
	var zero Resp
	codec := c.app.Codec()
	if reply.Metadata.Get(router.KeyReplyStatus) == StatusError {
		var e errorReply
		if err := codec.Unmarshal(reply.Payload, &e); err != nil {
			return zero, fmt.Errorf("reqreply: cannot decode the error reply to %s: %w", reqType, err)
		}
		return zero, &RemoteError{
			Code:        e.Code,
			Message:     e.Message,
			RequestType: reqType,
			Responder:   reply.Metadata.Get(router.KeySource),
			permanent:   e.Permanent,
		}
	}
	if reflect.TypeFor[Resp]().Kind() != reflect.Interface {
		want, err := router.TypeName[Resp]()
		if err != nil {
			return zero, err
		}
		return router.Decode[Resp](reply, codec, want)
	}
	// Resp is an interface: decode the concrete type the reply names.
	typ := reply.Metadata.Get(router.KeyType)
	m, err := c.app.Registry().DecodeAny(codec, typ, reply.Payload)
	if err != nil {
		return zero, fmt.Errorf("reqreply: reply to %s: %w (register the reply types with router.Register[T](app.Registry()))", reqType, err)
	}
	resp, ok := m.(Resp)
	if !ok {
		return zero, fmt.Errorf("reqreply: reply to %s is a %q (%T), which does not implement %T", reqType, typ, m, (*Resp)(nil))
	}
	return resp, nil
}
