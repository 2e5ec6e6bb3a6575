package reqreply

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/internal/msgtrace"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
)

const instrumentationName = "github.com/hexeract/hexeract/reqreply"

var serverSpan = trace.WithSpanKind(trace.SpanKindServer) //nolint:gochecknoglobals // an immutable span start option

// HandlerOption configures a responder added by [Handle].
type HandlerOption func(*handlerConfig)

type handlerConfig struct {
	name      string
	topic     string
	publisher message.Publisher
	tp        trace.TracerProvider
}

// WithHandlerName names the responder's Watermill handler. Names must be unique
// in an App; the default is "reqreply." followed by the request's wire name.
func WithHandlerName(name string) HandlerOption { return func(c *handlerConfig) { c.name = name } }

// HandlerName is the former name of [WithHandlerName].
//
// Deprecated: use WithHandlerName.
func HandlerName(name string) HandlerOption { return WithHandlerName(name) }

// WithHandlerTopic makes the responder consume requests from topic instead of
// the topic the App gives the request type. Callers must use the same topic
// ([Topic]).
func WithHandlerTopic(topic string) HandlerOption { return func(c *handlerConfig) { c.topic = topic } }

// HandlerTopic is the former name of [WithHandlerTopic].
//
// Deprecated: use WithHandlerTopic.
func HandlerTopic(topic string) HandlerOption { return WithHandlerTopic(topic) }

// WithReplyPublisher sets the publisher every reply is sent with. The
// default is derived from the App's transport (see [ReplyTransport]): a
// request whose caller consumes its replies from the transport's private
// reply channel (RabbitMQ, NATS) is answered through that channel, any
// other through the App's publisher. It is decorated with
// [middleware.TracingPublisher] (with the [WithHandlerTracerProvider]), so
// each reply gets a producer span in the request's trace. Give it when the
// callers' reply subscribers need a publisher the App cannot derive; the
// responder does not close it.
func WithReplyPublisher(p message.Publisher) HandlerOption {
	return func(c *handlerConfig) { c.publisher = p }
}

// ReplyPublisher is the former name of [WithReplyPublisher].
//
// Deprecated: use WithReplyPublisher.
func ReplyPublisher(p message.Publisher) HandlerOption { return WithReplyPublisher(p) }

// WithHandlerTracerProvider sets the OpenTelemetry tracer provider of the
// responder's spans; the default is the global one ([otel.GetTracerProvider]).
func WithHandlerTracerProvider(tp trace.TracerProvider) HandlerOption {
	return func(c *handlerConfig) { c.tp = tp }
}

// HandlerTracerProvider is the former name of [WithHandlerTracerProvider].
//
// Deprecated: use WithHandlerTracerProvider.
func HandlerTracerProvider(tp trace.TracerProvider) HandlerOption {
	return WithHandlerTracerProvider(tp)
}

// Handle adds a responder to app: h answers requests of type Req with a Resp
// or an error. The responder consumes the topic the App gives Req's wire name
// (like [hexeract.Handle]) and publishes each answer on the reply topic the
// request names. An error from h reaches the caller as a [*RemoteError] with
// its code (see [NewError]), its message and its permanent marker.
//
// Resp may be an interface type (router.Message or your own) when the
// answer is one of several message types; each reply then carries the wire
// name of the concrete value h returned, and the caller decodes it with
// [RequestAny] or a Request whose Resp is the same interface.
//
// h runs with a context that ends at the caller's deadline; a request whose
// deadline passed before it was picked up is acknowledged and skipped
// (counted in [Stats].Expired). Every request is acknowledged once its reply
// is published; if publishing the reply fails the request fails like any
// handler (the App's default middleware retries it, then dead-letters it).
// A panic in h reaches the caller as an internal [*RemoteError]. When h
// returns the cancelled context's error because the responder is shutting
// down, no answer is sent and the request is nacked for redelivery. A
// message on the topic without reply-to metadata is not a request: the
// handler returns a permanent error for it, for dead-letter middleware to
// move aside.
//
// Handle may be called before or after [hexeract.App.Run].
func Handle[Req, Resp router.Message](app *hexeract.App, h func(ctx context.Context, req Req) (Resp, error), opts ...HandlerOption) error {
	if app == nil {
		return errors.New("reqreply: Handle with a nil App")
	}
	if h == nil {
		return fmt.Errorf("reqreply: nil handler for %s", reflect.TypeFor[Req]())
	}
	want, err := router.Register[Req](app.Registry())
	if err != nil {
		return err
	}
	if reflect.TypeFor[Resp]().Kind() != reflect.Interface {
		if _, err := router.Register[Resp](app.Registry()); err != nil {
			return err
		}
	}
	var zero Req
	cfg := handlerConfig{name: "reqreply." + want, topic: app.TopicFor(zero)}
	for _, opt := range opts {
		opt(&cfg)
	}
	explicit := cfg.publisher != nil
	if cfg.publisher == nil {
		cfg.publisher = app.Publisher()
	}
	if cfg.publisher == nil {
		return fmt.Errorf("reqreply: responder for %q needs a publisher for its replies; give the App one (hexeract.WithPublisher) or pass reqreply.WithReplyPublisher", want)
	}
	if cfg.tp == nil {
		cfg.tp = otel.GetTracerProvider()
	}
	// Replies get a producer span ("send <reply topic>") whatever publisher
	// sends them: a ReplyPublisher (replyamqp, replynats) is decorated like
	// the App's publisher (which already is, and is left as it is).
	cfg.publisher = middleware.TracingPublisher(cfg.publisher, middleware.TracingOptions{TracerProvider: cfg.tp})
	st, err := stateOf(app)
	if err != nil {
		return fmt.Errorf("reqreply: Handle: %w", err)
	}
	r := &responder[Req, Resp]{
		app:       app,
		h:         h,
		want:      want,
		codec:     app.Codec(),
		publisher: cfg.publisher,
		explicit:  explicit,
		tp:        cfg.tp,
		tracer:    cfg.tp.Tracer(instrumentationName),
		state:     st,
		spanName:  want + " handle",
	}
	st.respondersMu.Lock()
	defer st.respondersMu.Unlock()
	if st.responders[cfg.name] {
		return fmt.Errorf("reqreply: this App already has a responder named %q; give the second %s responder another name with reqreply.WithHandlerName", cfg.name, want)
	}
	if err := app.AddHandler(cfg.name, cfg.topic, r.handle); err != nil {
		return err
	}
	if st.responders == nil {
		st.responders = make(map[string]bool)
	}
	st.responders[cfg.name] = true
	return nil
}

type responder[Req, Resp router.Message] struct {
	app       *hexeract.App
	h         func(ctx context.Context, req Req) (Resp, error)
	want      string
	spanName  string
	codec     router.Codec
	publisher message.Publisher
	explicit  bool // publisher was given with WithReplyPublisher
	tp        trace.TracerProvider
	tracer    trace.Tracer
	state     *appState
	derived   atomic.Pointer[viaPublisher]
}

// viaPublisher is the App's derived reply publisher of one reply scheme,
// decorated for the responder.
type viaPublisher struct {
	via string
	pub message.Publisher
}

// replyPublisher returns the publisher that reaches the reply topic of a
// request whose caller asked for replies through the reply channel via
// ([router.KeyReplyVia]): the App's derived reply publisher when its
// transport offers that channel, the responder's publisher otherwise.
func (r *responder[Req, Resp]) replyPublisher(via string) (message.Publisher, error) {
	if r.explicit || via == "" {
		return r.publisher, nil
	}
	if d := r.derived.Load(); d != nil && d.via == via {
		return d.pub, nil
	}
	p, err := r.state.replyPublisher(r.app, via)
	if err != nil {
		return nil, err
	}
	if p == nil {
		r.app.Logger().Warn("reqreply: the caller consumes its replies through a reply channel this App's transport does not offer; replying through the App's publisher, which may not reach it (give the responder reqreply.WithReplyPublisher)",
			"reply_via", via, "type", r.want)
		return r.publisher, nil
	}
	d := &viaPublisher{via: via, pub: middleware.TracingPublisher(p, middleware.TracingOptions{TracerProvider: r.tp})}
	r.derived.Store(d)
	return d.pub, nil
}

func (r *responder[Req, Resp]) handle(msg *message.Message) error {
	md := msg.Metadata
	replyTo := md.Get(router.KeyReplyTo)
	if replyTo == "" {
		return router.Permanent(fmt.Errorf("reqreply: message %s (type %q) on the %q request topic has no %s metadata; send requests with reqreply.Request", msg.UUID, md.Get(router.KeyType), r.want, router.KeyReplyTo))
	}
	reqID := md.Get(router.KeyRequestID)
	if reqID == "" {
		reqID = md.Get(router.KeyID)
	}
	deadline, hasDeadline := ParseDeadline(md.Get(router.KeyRequestDeadline))
	if hasDeadline && !time.Now().Before(deadline) {
		r.state.expired.Add(1)
		r.app.Logger().Debug("reqreply: skipping expired request", "request_id", reqID, "type", r.want, "deadline", deadline)
		return nil
	}

	base := msg.Context()
	if !trace.SpanContextFromContext(base).IsValid() {
		base = msgtrace.Extract(base, md, msgtrace.TraceContext)
	}
	base, span := r.tracer.Start(base, r.spanName, serverSpan)
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("messaging.message.id", reqID),
			attribute.String("messaging.destination.name", message.SubscribeTopicFromCtx(msg.Context())),
			attribute.String("hexeract.message.type", r.want),
		)
	}
	// The handler's context ends at the deadline or when the router cancels
	// it. Replies are built from a context that outlives both: a late reply
	// is still published (the caller drops and counts it), and a cancelled
	// context must not fail the publish.
	handlerCtx := router.WithIncoming(base, msg)
	replyCtx := router.WithIncoming(context.WithoutCancel(base), msg)

	pub, err := r.replyPublisher(md.Get(router.KeyReplyVia))
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return err
	}
	if md.Get(router.KeyReplyAck) == "1" {
		if err := r.publishAccepted(replyCtx, pub, replyTo, reqID); err != nil {
			span.SetStatus(codes.Error, err.Error())
			return err
		}
	}

	reply, err := r.answer(handlerCtx, replyCtx, msg, deadline, hasDeadline, span)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return err
	}
	reply.Metadata[router.KeyRequestID] = reqID
	msgtrace.Inject(replyCtx, reply, msgtrace.TraceContext)
	if err := pub.Publish(replyTo, reply); err != nil {
		err = fmt.Errorf("reqreply: publish reply to %s on %q: %w", r.want, replyTo, err)
		span.SetStatus(codes.Error, err.Error())
		return err
	}
	r.state.handled.Add(1)
	return nil
}

// answer runs the handler and encodes its result or error as a reply.
func (r *responder[Req, Resp]) answer(ctx, replyCtx context.Context, msg *message.Message, deadline time.Time, hasDeadline bool, span trace.Span) (*message.Message, error) {
	req, err := router.Decode[Req](msg, r.codec, r.want)
	if err != nil {
		r.app.Logger().Warn("reqreply: cannot decode request", "error", err)
		span.RecordError(err)
		span.SetStatus(codes.Error, "bad request")
		return r.errorMessage(replyCtx, errorReply{Code: CodeBadRequest, Message: err.Error(), Permanent: true})
	}
	if hasDeadline {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	resp, herr := r.call(ctx, req)
	if herr != nil && errors.Is(herr, context.Canceled) && errors.Is(msg.Context().Err(), context.Canceled) {
		// The router is shutting down: the handler did not fail, it was
		// stopped. No answer; the request is nacked for another instance.
		return nil, fmt.Errorf("reqreply: the %s handler was stopped by the responder's shutdown; the request is left for redelivery: %w", r.want, herr)
	}
	if herr != nil {
		span.RecordError(herr)
		span.SetStatus(codes.Error, herr.Error())
		return r.errorMessage(replyCtx, remoteFrom(herr))
	}
	if any(resp) == nil {
		e := errorReply{Code: CodeInternal, Message: fmt.Sprintf("handler for %s returned a nil response and no error", r.want)}
		span.SetStatus(codes.Error, e.Message)
		return r.errorMessage(replyCtx, e)
	}
	reply, err := r.app.NewMessage(replyCtx, resp)
	if err != nil {
		e := errorReply{Code: CodeInternal, Message: fmt.Sprintf("cannot encode the %s response: %v", resp.MessageType(), err)}
		span.SetStatus(codes.Error, e.Message)
		return r.errorMessage(replyCtx, e)
	}
	reply.Metadata[router.KeyReplyStatus] = StatusOK
	return reply, nil
}

// call runs the handler. A panic becomes an internal error for the caller
// (logged with its stack) instead of a retry of the whole request and a
// caller left waiting for its deadline.
func (r *responder[Req, Resp]) call(ctx context.Context, req Req) (resp Resp, err error) {
	defer func() {
		if p := recover(); p != nil {
			r.app.Logger().Error("reqreply: request handler panicked", "type", r.want, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("handler for %s panicked: %v", r.want, p)
		}
	}()
	return r.h(ctx, req)
}

func (r *responder[Req, Resp]) errorMessage(ctx context.Context, e errorReply) (*message.Message, error) {
	m, err := r.app.NewMessage(ctx, e)
	if err != nil {
		return nil, fmt.Errorf("reqreply: encode error reply: %w", err)
	}
	m.Metadata[router.KeyReplyStatus] = StatusError
	return m, nil
}

func (r *responder[Req, Resp]) publishAccepted(ctx context.Context, pub message.Publisher, replyTo, reqID string) error {
	m, err := r.app.NewMessage(ctx, acceptedReply{})
	if err != nil {
		return fmt.Errorf("reqreply: encode receipt: %w", err)
	}
	m.Metadata[router.KeyReplyStatus] = StatusAccepted
	m.Metadata[router.KeyRequestID] = reqID
	msgtrace.Inject(ctx, m, msgtrace.TraceContext)
	if err := pub.Publish(replyTo, m); err != nil {
		return fmt.Errorf("reqreply: publish receipt for %s on %q: %w", r.want, replyTo, err)
	}
	return nil
}

// remoteFrom turns a handler error into the error reply the caller gets.
func remoteFrom(err error) errorReply {
	e := errorReply{Code: CodeInternal, Message: err.Error(), Permanent: router.IsPermanent(err)}
	var re *RemoteError
	var coder interface{ ErrorCode() string }
	switch {
	case errors.As(err, &re):
		e.Code = re.Code
		if re.Message != "" && err == error(re) {
			e.Message = re.Message
		}
		e.Permanent = e.Permanent || re.permanent
	case errors.As(err, &coder) && coder.ErrorCode() != "":
		e.Code = coder.ErrorCode()
	case errors.Is(err, context.DeadlineExceeded):
		e.Code = CodeDeadlineExceeded
	}
	if e.Code == "" {
		e.Code = CodeInternal
	}
	return e
}
