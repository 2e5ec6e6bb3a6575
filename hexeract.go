package hexeract

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/adapters/mem"
	"github.com/hexeract/hexeract/internal/ingress"
	"github.com/hexeract/hexeract/internal/wmlog"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
)

// App is a Hexeract application: a Watermill router with typed handlers, a
// publisher for typed messages, and background workers. Build it with [New].
type App struct {
	router     *message.Router
	publisher  message.Publisher
	subscriber message.Subscriber
	registry   *router.Registry
	codec      router.Codec
	topics     router.TopicNaming
	source     string
	logger     *slog.Logger
	workers    []Worker
	ownsPubSub bool
	// rawPublisher is the publisher as given, before the default chain
	// decorated it (for the transport's topic rules, topics.go).
	rawPublisher message.Publisher
	// topicUsers are the topics the App consumes, with the handler that
	// consumes each (for the transport's topic rules, topics.go).
	topicUsers map[string]string
	// dlqTopic names the dead-letter topic of a topic when the default
	// chain dead-letters to the broker; nil otherwise.
	dlqTopic func(string) string
	// rawTypes maps a topic to the type its raw messages are assumed to
	// have (WithRawMessages, WithAcceptRaw): topic string -> wire name string.
	rawTypes sync.Map
	// broker is the in-memory broker the App made when given no transport.
	broker *mem.Broker
	// hub subscribes once per topic and hands each message to every
	// handler of the topic (internal/ingress).
	hub          *ingress.Hub
	closeTimeout time.Duration

	mu       sync.Mutex
	handlers map[string]bool
	running  bool
	closed   bool
	useErr   error // the first nil middleware given to Use
	runCtx   context.Context
	// routerDone is closed when the router's Run has returned.
	routerDone chan struct{}
	// runDone is closed when Run has returned (its workers stopped).
	runDone chan struct{}

	// compMu guards the attached Components (component.go). It is not
	// a.mu: creating a Component may add handlers, which take a.mu.
	compMu      sync.Mutex
	components  []Component
	compStarted bool
	compClosed  bool
	compCtx     context.Context
	// ownedOnce closes the transport the App created, once.
	ownedOnce sync.Once

	// pluginMu guards the installed plugins' names (plugin.go); it is not
	// held while a plugin installs.
	store     appStore    // WithStore; nil without
	owned     []io.Closer // WithOwned: closed last by Close
	migrators []interface {
		Migrate(ctx context.Context) error
	}

	pluginMu   sync.Mutex
	plugins    []string
	installing map[string]bool
}

// New builds an App. With no publisher and no subscriber it uses an
// in-memory broker of its own (adapters/mem; messages do not survive the
// process). Giving only one of the two is allowed: an App with only a
// publisher can publish but not handle, one with only a subscriber can
// handle but not publish.
//
// Every handler added to the App receives every message of its topic and
// type, on every transport: the App subscribes once per topic and hands each
// message to each of the topic's handlers (see docs/transports.md, "One bus
// semantics"); replicas of the App compete for the messages through the
// transport's consumer group.
func New(opts ...Option) (_ *App, err error) {
	cfg := config{}
	for _, opt := range opts {
		opt(&cfg)
	}
	defer func() {
		if err != nil {
			// What WithOwned handed over is the App's even when New fails.
			err = errors.Join(err, closeAll(cfg.owned))
		}
	}()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	if cfg.topics == nil {
		cfg.topics = router.DefaultTopics{}
	}
	if cfg.codec == nil {
		cfg.codec = router.JSON{}
	}
	if cfg.source == "" {
		cfg.source = router.DefaultSource
	}
	wmLogger := wmlog.New(cfg.logger)
	app := &App{
		registry: router.NewRegistry(),
		codec:    cfg.codec,
		topics:   cfg.topics,
		source:   cfg.source,
		logger:   cfg.logger,
		workers:  cfg.workers,
		handlers: make(map[string]bool),

		routerDone: make(chan struct{}),
		runDone:    make(chan struct{}),
	}
	app.publisher, app.subscriber = cfg.publisher, cfg.subscriber
	app.rawPublisher = cfg.publisher
	if app.publisher == nil && app.subscriber == nil {
		app.broker = mem.New(mem.Config{Logger: wmLogger})
		app.publisher, app.subscriber, app.ownsPubSub = app.broker.Publisher(), app.broker.Subscriber(""), true
	}
	for topic, typ := range cfg.raw {
		app.rawTypes.Store(topic, typ)
	}
	app.closeTimeout = cfg.routerCfg.CloseTimeout
	if app.closeTimeout <= 0 {
		app.closeTimeout = 30 * time.Second // Watermill's default
	}
	if app.subscriber != nil {
		app.hub = ingress.New(app.subscriber, ingress.Options{
			Logger: cfg.logger,
			// CloudEvents batches become one message per event before any
			// handler or middleware sees them; a single structured event
			// is routed by the type in its body and decoded whole by the
			// handler, so its dead letter keeps the producer's body.
			Expand: router.ExpandBatch,
			TypeOf: router.EventType,
			// Raw messages of the topics that assume a type get its
			// envelope before they are routed.
			Prepare: app.assumeRaw,
		})
	}
	r, err := message.NewRouter(cfg.routerCfg, wmLogger)
	if err != nil {
		return nil, fmt.Errorf("hexeract: router config: %w", err)
	}
	// Outermost: grow each handler goroutine's stack once, while it is
	// shallow, instead of repeatedly deep inside the chain and the decoder.
	r.AddMiddleware(router.ReserveStack)
	if cfg.store != nil {
		// Built before the default middleware, whose dead-letter step
		// writes into the store's dead-letter table.
		if app.store, err = cfg.store(app); err != nil {
			return nil, err
		}
	}
	if err := app.installDefaults(&cfg, r); err != nil {
		return nil, err
	}
	r.AddMiddleware(cfg.middleware...)
	app.router = r
	if app.store != nil {
		if err := app.store.install(app); err != nil {
			return nil, errors.Join(err, app.Close())
		}
	}
	for i, p := range cfg.plugins {
		if err := app.Install(p); err != nil {
			if p == nil {
				err = fmt.Errorf("hexeract: plugin %d given with WithPlugins is nil", i)
			}
			return nil, errors.Join(err, app.Close())
		}
	}
	// Set last: a failure above leaves them to New's deferred close.
	app.owned = cfg.owned
	return app, nil
}

// Handle adds a typed handler for messages of type T, consumed from the
// topic the App's topic naming gives for T's wire name (or the one set by
// [WithTopic]). Messages without a CloudEvents envelope are dead-lettered
// unless the handler is added with [WithAcceptRaw] or the topic is given to
// [WithRawMessages]. It returns an error for a nil handler, a type without a
// usable wire name, a wire name already taken by another Go type, or a
// handler name already in use.
func Handle[T router.Message](app *App, h router.Handler[T], opts ...HandlerOption) error {
	fn, err := router.NewHandlerFunc(h, app.codec)
	if err != nil {
		return err
	}
	name, err := router.Register[T](app.registry)
	if err != nil {
		return err
	}
	hc := handlerConfig{name: name, topic: app.topics.Topic(name)}
	for _, opt := range opts {
		opt(&hc)
	}
	if hc.rawTypes {
		prev, loaded := app.rawTypes.LoadOrStore(hc.topic, name)
		if loaded && prev.(string) != name {
			return fmt.Errorf("hexeract: handler %q: WithAcceptRaw on topic %q, whose raw messages are already taken as %q; a topic's raw messages have one type (give this handler its own topic with hexeract.WithTopic)", hc.name, hc.topic, prev)
		}
		if err := app.addHandler(hc.name, hc.topic, name, fn); err != nil {
			if !loaded {
				app.rawTypes.Delete(hc.topic)
			}
			return err
		}
		return nil
	}
	return app.addHandler(hc.name, hc.topic, name, fn)
}

// assumeRaw gives a raw message of a topic that assumes a type the
// envelope of that type (see WithRawMessages, WithAcceptRaw).
func (a *App) assumeRaw(topic string, msg *message.Message) {
	if typ, ok := a.rawTypes.Load(topic); ok {
		router.AssumeEnvelope(msg, typ.(string))
	}
}

// HandleFunc adds a typed handler function; see [Handle].
func HandleFunc[T router.Message](app *App, f func(ctx context.Context, msg T) error, opts ...HandlerOption) error {
	if f == nil {
		var zero T
		return fmt.Errorf("hexeract: nil handler func for %T", zero)
	}
	return Handle[T](app, router.HandlerFunc[T](f), opts...)
}

// AddHandler adds a raw Watermill handler function consuming topic, for
// handlers that work on *message.Message directly, with the App's default
// middleware chain around it. It receives every message of the topic,
// whatever its type. Names must be unique. A raw handler that returns
// messages to publish is added with [App.AddPublisherHandler].
func (a *App) AddHandler(name, topic string, fn message.NoPublishHandlerFunc) error {
	if fn == nil {
		return fmt.Errorf("hexeract: nil handler %q", name)
	}
	return a.addHandler(name, topic, "", fn)
}

// AddPublisherHandler adds a raw Watermill handler that consumes topic and
// publishes the messages it returns on publishTopic through the App's
// publisher, with the App's default middleware chain around it like every
// other handler: the returned messages carry the incoming correlation id
// and its id as causation id (and the trace context), failures are retried
// and dead-lettered, and messages returned by a failed attempt are dropped.
// It receives every message of the topic, whatever its type. Names must be
// unique. The App needs a publisher and a subscriber.
//
// It is Watermill's Router.AddHandler for an App: a handler registered
// directly on app.Router() with AddHandler would bypass the App's one
// subscription per topic (see docs/transports.md, "One bus semantics").
func (a *App) AddPublisherHandler(name, topic, publishTopic string, fn message.HandlerFunc) error {
	if fn == nil {
		return fmt.Errorf("hexeract: nil handler %q", name)
	}
	if a.publisher == nil {
		return fmt.Errorf("hexeract: handler %q publishes to %q but the App has no publisher; pass hexeract.WithPublisher", name, publishTopic)
	}
	if publishTopic == "" {
		return fmt.Errorf("hexeract: handler %q has an empty publish topic; use App.AddHandler for a handler that publishes nothing", name)
	}
	return a.addRouterHandler(name, topic, "", publishTopic, middleware.CountCalls(fn))
}

// addHandler adds a router handler for topic that takes the messages of
// wire type typ ("" for every type).
func (a *App) addHandler(name, topic, typ string, fn message.NoPublishHandlerFunc) error {
	return a.addRouterHandler(name, topic, typ, "", countCalls(fn))
}

// addRouterHandler adds fn to the router for topic, taking the messages of
// wire type typ ("" for every type) and publishing what it returns on
// publishTopic ("" for none; fn then returns no messages).
func (a *App) addRouterHandler(name, topic, typ, publishTopic string, fn message.HandlerFunc) error {
	if a.subscriber == nil {
		return fmt.Errorf("hexeract: handler %q needs a subscriber; pass hexeract.WithSubscriber", name)
	}
	if topic == "" {
		return fmt.Errorf("hexeract: handler %q has an empty topic", name)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed || a.stopped() {
		return fmt.Errorf("hexeract: handler %q added after the App was closed or stopped; add handlers before App.Run returns", name)
	}
	if a.handlers[name] {
		return fmt.Errorf("hexeract: a handler named %q is already registered; give the second one another name with hexeract.WithName", name)
	}
	member, err := a.hub.Join(topic, name, typ)
	if err != nil {
		return err
	}
	a.handlers[name] = true
	if a.topicUsers == nil {
		a.topicUsers = make(map[string]string)
	}
	if _, ok := a.topicUsers[topic]; !ok {
		a.topicUsers[topic] = name
	}
	if publishTopic == "" {
		a.router.AddConsumerHandler(name, topic, member, func(msg *message.Message) error {
			_, err := fn(msg)
			return err
		})
	} else {
		a.router.AddHandler(name, topic, member, publishTopic, a.publisher, fn)
	}
	if a.running {
		// Run has been called but its router may not be running yet; it
		// starts the new handler itself in that case, and RunHandlers before
		// that would fail (and race with the router's start).
		select {
		case <-a.router.Running():
		case <-a.routerDone:
		case <-a.runDone: // Run failed before it started the router
		}
		if !a.router.IsRunning() || a.router.IsClosed() {
			return fmt.Errorf("hexeract: handler %q added while the App was stopping; it will not run", name)
		}
		return a.router.RunHandlers(a.runCtx)
	}
	return nil
}

// countCalls wraps fn in middleware.CountCalls, inside every router
// middleware (the App's and the caller's, Watermill's Retry included), so
// a dead letter counts the handler calls made.
func countCalls(fn message.NoPublishHandlerFunc) message.HandlerFunc {
	return middleware.CountCalls(func(msg *message.Message) ([]*message.Message, error) { return nil, fn(msg) })
}

// stopped reports whether the router ran and has returned. The caller holds a.mu.
func (a *App) stopped() bool {
	if !a.running {
		return false
	}
	select {
	case <-a.routerDone:
		return true
	case <-a.runDone:
		return true
	default:
		return false
	}
}

// Use adds Watermill handler middleware to every handler. Middleware added
// first runs outermost. Call it before [App.Run]: a handler that is already
// running keeps the middleware it started with, so middleware added later
// reaches only handlers added after it. A nil middleware is not added, and
// [App.Run] then refuses to start with an error naming it (rather than the
// router crashing later in a goroutine the caller cannot recover).
func (a *App) Use(mw ...message.HandlerMiddleware) {
	for i, m := range mw {
		if m == nil {
			a.mu.Lock()
			if a.useErr == nil {
				a.useErr = fmt.Errorf("hexeract: App.Use was given a nil middleware (argument %d of %d); nothing of that call was added", i+1, len(mw))
			}
			a.mu.Unlock()
			return
		}
	}
	a.router.AddMiddleware(mw...)
}

// Publish encodes msgs with the App's envelope and codec and publishes each
// on the topic of its type. Inside a handler (ctx from the handler), the
// messages carry the incoming message's correlation id and its id as their
// causation id. Consecutive messages for the same topic go in one
// Publish call. Every message is encoded before any is published, so a nil
// message, one without a wire name or one the codec refuses fails the call
// with nothing published.
func (a *App) Publish(ctx context.Context, msgs ...router.Message) error {
	if a.publisher == nil {
		return errors.New("hexeract: this App has no publisher; pass hexeract.WithPublisher")
	}
	if len(msgs) == 0 {
		return nil
	}
	wms := make([]*message.Message, len(msgs))
	var buf [8]string // topics of a small batch, without an allocation
	topics := buf[:0]
	for i, m := range msgs {
		if m == nil {
			return errors.New("hexeract: Publish of a nil message")
		}
		wm, err := a.NewMessage(ctx, m)
		if err != nil {
			return fmt.Errorf("hexeract: encode %s: %w", m.MessageType(), err)
		}
		t := a.topics.Topic(m.MessageType())
		if t == "" {
			return fmt.Errorf("hexeract: the App's topic function returned an empty topic for %q", m.MessageType())
		}
		wms[i] = wm
		topics = append(topics, t)
	}
	for i := 0; i < len(wms); {
		j := i + 1
		for j < len(wms) && topics[j] == topics[i] {
			j++
		}
		if ex, ok := a.txOf(ctx); ok {
			// Inside InTx or an inbox handler: into the outbox, in the transaction.
			if err := a.publishTx(ctx, ex, topics[i], wms[i:j]); err != nil {
				return err
			}
			i = j
			continue
		}
		if err := a.publisher.Publish(topics[i], wms[i:j]...); err != nil {
			// Say what to change when the transport refuses the topic's name.
			return errors.Join(err, a.CheckTopic(topics[i]))
		}
		i = j
	}
	return nil
}

// NewMessage encodes m as a Watermill message with the App's envelope
// (source, codec) and correlation from ctx, without publishing it.
func (a *App) NewMessage(ctx context.Context, m router.Message) (*message.Message, error) {
	return router.NewMessage(ctx, m, router.EncodeOptions{Codec: a.codec, Source: a.source})
}

// TopicFor returns the topic the App publishes m's type on.
func (a *App) TopicFor(m router.Message) string { return a.topics.Topic(m.MessageType()) }

// Topics returns the App's topic naming (see [WithTopicNaming]): give it to
// the components built beside the App, so every one names topics the same
// way without repeating the configuration:
//
//	drv := postgres.New(pool)
//	ob, _ := outbox.New(drv, outbox.WithTopicNaming(app.Topics()))
//	sched, _ := scheduler.New(drv, ob) // takes the outbox's naming
func (a *App) Topics() router.TopicNaming { return a.topics }

// Run starts the attached Components ([App.Attach]), then runs the router
// and the workers until ctx is cancelled or a worker fails. On cancellation
// the router stops taking new messages and waits for in-flight handlers (up
// to the router's CloseTimeout), then the workers are cancelled and Run
// returns nil once they have returned. The Components stay open until
// [App.Close], which the caller calls after Run returns. If the router
// stops by itself first (every handler's subscription ended), Run returns
// [ErrRouterStopped]. Run may be called once, and not after [App.Close].
func (a *App) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return errors.New("hexeract: App.Run called after App.Close; build a new App with hexeract.New")
	}
	if a.running {
		a.mu.Unlock()
		return errors.New("hexeract: App.Run called twice")
	}
	if a.useErr != nil {
		a.mu.Unlock()
		return a.useErr
	}
	if err := a.checkTopics(); err != nil {
		a.mu.Unlock()
		return err
	}
	a.running = true
	// The router runs on a context that is not cancelled with ctx, so a
	// cancellation closes it gracefully (in-flight handlers finish) instead
	// of cutting its subscribers mid-message.
	routerCtx := context.WithoutCancel(ctx)
	a.runCtx = routerCtx
	a.mu.Unlock()
	defer close(a.runDone)

	compCtx, stopComponents := context.WithCancel(routerCtx)
	defer stopComponents()
	if err := a.startComponents(compCtx); err != nil {
		return err
	}
	// Workers are cancelled only once the router has drained (below), so
	// what the in-flight handlers write (an outbox row, a schedule) is still
	// taken by a relay or poller of this App.
	workerCtx, stopWorkers := context.WithCancel(routerCtx)
	defer stopWorkers()
	errs := make(chan error, len(a.workers)+1)
	var wg sync.WaitGroup
	for _, w := range a.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.Run(workerCtx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- err
			}
		}()
	}
	routerDone := make(chan error, 1)
	go func() {
		err := a.router.Run(routerCtx)
		close(a.routerDone)
		routerDone <- err
	}()

	var subscriptionEnded <-chan error
	if a.hub != nil {
		subscriptionEnded = a.hub.Failed()
	}
	var runErr error
	select {
	case <-ctx.Done():
	case err := <-errs:
		runErr = fmt.Errorf("hexeract: worker stopped: %w", err)
	case err := <-subscriptionEnded:
		// One topic's subscription ended on its own: the App no longer
		// consumes all it should, so it stops rather than limp on.
		runErr = fmt.Errorf("%w: %w", ErrRouterStopped, err)
	case err := <-routerDone:
		// The router stopped on its own (all subscribers closed, or it failed to start).
		stopWorkers()
		wg.Wait()
		if err == nil && ctx.Err() == nil && !a.isClosed() {
			// Watermill's router returns nil when every handler's
			// subscription has ended; a service would then exit 0 without
			// consuming anything, and a supervisor that restarts only on
			// failure would leave it down.
			err = ErrRouterStopped
			select {
			case ended := <-subscriptionEnded:
				err = fmt.Errorf("%w: %w", ErrRouterStopped, ended)
			default:
			}
		}
		return errors.Join(err, a.closeHub())
	}
	closeErr := a.closeRouter()
	if err := <-routerDone; err != nil && runErr == nil {
		runErr = err
	}
	stopWorkers()
	wg.Wait()
	if runErr == nil {
		runErr = closeErr
	}
	return runErr
}

// Running is closed once the router is running and its handlers are subscribed.
func (a *App) Running() <-chan struct{} { return a.router.Running() }

// ErrRouterStopped is returned (wrapped, naming the topic when one is known)
// by [App.Run] when the App stopped consuming by itself, before Run's
// context was cancelled and without [App.Close]: a transport subscription
// ended (the transport closed it, or the subscriber was closed), or the
// router stopped. The App does not limp on with some topics unconsumed:
// exit with an error so the process is restarted, or build a new App.
var ErrRouterStopped = errors.New("hexeract: the App stopped consuming by itself: a subscription ended (the transport closed it, or the subscriber was closed); restart the App")

// isClosed reports whether Close was called.
func (a *App) isClosed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.closed
}

// Close stops the App and releases what it owns, in this order (see
// [Component] and docs/getting-started.md, "Lifecycle"):
//
//  1. the router stops taking messages; messages received but not yet
//     handled are given back to the transport;
//  2. the handlers in flight finish (up to the router's CloseTimeout);
//  3. the workers ([WithWorker]: outbox relay, scheduler, inbox trimmer)
//     are cancelled, and Close waits for [App.Run] to return;
//  4. the attached Components ([App.Attach]: request/reply client, saga
//     runtimes) are closed, in reverse attach order;
//  5. the in-memory broker, when the App created it;
//  6. what was handed over with [WithOwned] (a transport, a store driver),
//     in reverse order.
//
// A publisher and a subscriber passed in by the caller are left open for the
// caller to close (unless handed over with [WithOwned]), so several Apps may
// share them. Close may be called
// whether or not Run was, and from another goroutine while Run runs; it
// must not be called from a handler or a worker of the same App (it waits
// for them). Calling it again does nothing more.
func (a *App) Close() error {
	a.mu.Lock()
	ran := a.running
	a.closed = true
	a.mu.Unlock()
	var err error
	if ran {
		err = a.closeRouter()
		// Run stops the workers once the router returned.
		select {
		case <-a.runDone:
		case <-time.After(a.closeTimeout):
			err = errors.Join(err, fmt.Errorf("hexeract: App.Run did not return within %s of Close (a worker ignores its context?)", a.closeTimeout))
		}
	}
	err = errors.Join(err, a.closeComponents())
	a.ownedOnce.Do(func() {
		if a.ownsPubSub {
			err = errors.Join(err, a.publisher.Close(), a.subscriber.Close())
			if a.broker != nil {
				err = errors.Join(err, a.broker.Close())
			}
		}
		err = errors.Join(err, closeAll(a.owned))
	})
	return err
}

// closeAll closes cs in reverse order and joins their errors.
func closeAll(cs []io.Closer) error {
	var errs []error
	for i := len(cs) - 1; i >= 0; i-- {
		if cs[i] != nil {
			errs = append(errs, cs[i].Close())
		}
	}
	return errors.Join(errs...)
}

// closeRouter closes the router once Run has started its handlers, and does
// nothing when the router stopped without starting them. A router that is
// closed before its handlers started (Run's context cancelled at once, Close
// called right after Run) or that never started them (a subscription
// failed) holds its handler lock while it waits the whole CloseTimeout for
// handlers that cannot start, then reports a close timeout. Run must have
// been called.
func (a *App) closeRouter() error {
	select {
	case <-a.router.Running():
	case <-a.routerDone:
	case <-a.runDone: // Run returned before it started the router
	}
	if !a.router.IsRunning() {
		return a.closeHub()
	}
	return errors.Join(a.router.Close(), a.closeHub())
}

// closeHub ends the App's transport subscriptions once the router closed:
// the messages received after the handlers stopped taking them are nacked
// at once, so the transport hands them to another replica without waiting
// for an acknowledgement timeout.
func (a *App) closeHub() error {
	if a.hub == nil {
		return nil
	}
	return a.hub.Close(a.closeTimeout)
}

// Router returns the underlying Watermill router, for plugins, decorators
// and raw handlers.
func (a *App) Router() *message.Router { return a.router }

// Publisher returns the App's Watermill publisher.
func (a *App) Publisher() message.Publisher { return a.publisher }

// Subscriber returns the App's Watermill subscriber.
func (a *App) Subscriber() message.Subscriber { return a.subscriber }

// Logger returns the App's logger.
func (a *App) Logger() *slog.Logger { return a.logger }

// Registry returns the App's message type registry: every type with a
// handler is registered; register others with [router.Register].
func (a *App) Registry() *router.Registry { return a.registry }

// Codec returns the App's payload codec.
func (a *App) Codec() router.Codec { return a.codec }
