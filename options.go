package hexeract

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
)

// Option configures an [App] built by [New].
type Option func(*config)

type config struct {
	publisher  message.Publisher
	subscriber message.Subscriber
	logger     *slog.Logger
	topics     router.TopicNaming
	codec      router.Codec
	source     string
	routerCfg  message.RouterConfig
	workers    []Worker
	middleware []message.HandlerMiddleware
	plugins    []Plugin                     // installed by New after the other options (WithPlugins)
	store      func(*App) (appStore, error) // WithStore
	storeErr   error
	owned      []io.Closer // WithOwned
	// noDefaults turns off the default middleware chain.
	noDefaults bool
	// raw maps topics whose raw messages get an assumed type (WithRawMessages).
	raw    map[string]string
	rawErr error // the first topic given two types
	// defaultMiddleware tunes the default chain (defaults.go).
	defaultMiddleware []func(*middleware.DefaultConfig)
}

// validate reports options that would otherwise crash a goroutine of
// [App.Run] (a nil worker) or of the router (a nil middleware).
func (c *config) validate() error {
	for i, w := range c.workers {
		if f, ok := w.(WorkerFunc); w == nil || (ok && f == nil) {
			return fmt.Errorf("hexeract: worker %d given with WithWorker is nil; check the error of the function that built it", i)
		}
	}
	for i, mw := range c.middleware {
		if mw == nil {
			return fmt.Errorf("hexeract: middleware %d given with WithMiddleware is nil", i)
		}
	}
	if c.rawErr != nil {
		return c.rawErr
	}
	if c.storeErr != nil {
		return c.storeErr
	}
	for topic, typ := range c.raw {
		if topic == "" || typ == "" {
			return fmt.Errorf("hexeract: WithRawMessages(%q, %q): topic and wire name must not be empty", topic, typ)
		}
	}
	return nil
}

// Worker is a background process that [App.Run] runs beside the router, such
// as an outbox relay or a scheduler poller. Run must block until ctx is
// cancelled and then return nil, or return an error that stops the App.
type Worker interface {
	Run(ctx context.Context) error
}

// WorkerFunc adapts a function to [Worker].
type WorkerFunc func(ctx context.Context) error

// Run calls f(ctx).
func (f WorkerFunc) Run(ctx context.Context) error { return f(ctx) }

// WithPublisher sets the Watermill publisher used by [App.Publish]. Without
// it (and without a subscriber) the App uses an in-memory GoChannel.
func WithPublisher(p message.Publisher) Option { return func(c *config) { c.publisher = p } }

// WithSubscriber sets the Watermill subscriber the typed handlers consume from.
func WithSubscriber(s message.Subscriber) Option { return func(c *config) { c.subscriber = s } }

// WithPubSub sets a publisher and a subscriber at once, for transports whose
// one value is both (GoChannel, for example).
func WithPubSub(p message.Publisher, s message.Subscriber) Option {
	return func(c *config) { c.publisher, c.subscriber = p, s }
}

// WithLogger sets the logger of the App and of its Watermill router. The
// default is [slog.Default].
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithTopicFunc overrides how a wire name maps to a topic; the default topic
// is the wire name itself. It is WithTopicNaming(router.FuncTopics{TopicOf: f}):
// dead-letter and reply topics keep their default names. Prefer
// [WithTopicNaming], which names those too.
func WithTopicFunc(f router.TopicFunc) Option {
	return func(c *config) {
		if f != nil {
			c.topics = router.FuncTopics{TopicOf: f}
		}
	}
}

// WithRawMessages makes the App take raw messages on topic, ones without a
// CloudEvents envelope (no ce_type), as messages of wire type wireName: each
// gets ce_type wireName and its Watermill UUID as ce_id before it is routed,
// so the typed handlers of wireName on that topic accept it (see
// [router.AssumeEnvelope]; the per-handler form is [WithAcceptRaw]). Give it once
// per topic; [New] refuses two types for one topic.
func WithRawMessages(topic, wireName string) Option {
	return func(c *config) {
		if c.raw == nil {
			c.raw = make(map[string]string)
		}
		if prev, ok := c.raw[topic]; ok && prev != wireName {
			if c.rawErr == nil {
				c.rawErr = fmt.Errorf("hexeract: WithRawMessages gives topic %q two types (%q and %q); a topic's raw messages can be assumed to be of one type only", topic, prev, wireName)
			}
			return
		}
		c.raw[topic] = wireName
	}
}

// WithTopicNaming sets how the App names every topic (see
// [router.TopicNaming]): its handlers' and its publisher's topics, the
// dead-letter topics of the default middleware (unless
// DeadLetterOptions.Topic is set) and request/reply's reply topic. Build the
// outbox and the scheduler with [App.Topics] so they name topics the same
// way. The default is [DefaultTopics]; use [UnderscoreTopics] with
// watermill-nats and AutoProvision, whose JetStream stream names cannot hold
// dots ([App.Run] refuses dotted topics there, naming the topic).
func WithTopicNaming(n router.TopicNaming) Option {
	return func(c *config) {
		if n != nil {
			c.topics = n
		}
	}
}

// DefaultTopics is the default topic naming: the wire name, "<topic>.dlq"
// and "hexeract.replies.<id>" (see [router.DefaultTopics]).
type DefaultTopics = router.DefaultTopics

// UnderscoreTopics is the dot-free topic naming: "billing_invoiced",
// "<topic>_dlq" and "hexeract_replies_<id>" (see [router.UnderscoreTopics]).
type UnderscoreTopics = router.UnderscoreTopics

// WithCodec sets the payload codec; the default is JSON.
func WithCodec(codec router.Codec) Option { return func(c *config) { c.codec = codec } }

// WithSource sets the CloudEvents source (ce_source) of published messages,
// typically the service name, for example "/billing".
func WithSource(source string) Option { return func(c *config) { c.source = source } }

// WithRouterConfig sets the configuration of the underlying Watermill router
// (for example its CloseTimeout, the time in-flight handlers get on shutdown).
func WithRouterConfig(rc message.RouterConfig) Option { return func(c *config) { c.routerCfg = rc } }

// WithWorker attaches a background worker that [App.Run] runs beside the router.
func WithWorker(w Worker) Option { return func(c *config) { c.workers = append(c.workers, w) } }

// WithMiddleware adds Watermill handler middleware to every handler, like
// [App.Use]. The first middleware given runs outermost.
func WithMiddleware(mw ...message.HandlerMiddleware) Option {
	return func(c *config) { c.middleware = append(c.middleware, mw...) }
}

// WithoutDefaultMiddleware turns off the default middleware chain that New
// installs, leaving only the middleware given with [WithMiddleware] and
// [App.Use]. The App's publisher is then not decorated either (no trace
// context or correlation stamping beyond what router.NewMessage does); see
// defaults.go and [WithDefaultMiddleware].
func WithoutDefaultMiddleware() Option { return func(c *config) { c.noDefaults = true } }

// HandlerOption configures one handler added by [Handle] or [HandleFunc].
type HandlerOption func(*handlerConfig)

type handlerConfig struct {
	name     string
	topic    string
	rawTypes bool
}

// WithAcceptRaw makes the handler accept raw messages, ones without a
// CloudEvents envelope (no ce_type), as written by Watermill producers that
// Hexeract did not build: each such message on the handler's topic is taken
// as the handler's type, with the Watermill UUID as its id, and its body is
// decoded with the App's codec (see [router.AssumeEnvelope]). Messages that
// carry a type are routed by it as usual. It is opt-in per handler, so
// consumers can move to typed handlers before their producers change; a
// topic can assume one type only ([WithRawMessages] sets it per topic).
func WithAcceptRaw() HandlerOption { return func(h *handlerConfig) { h.rawTypes = true } }

// WithName names the handler. Names must be unique in an App; the default is
// the message type's wire name. Name a second handler of the same type.
func WithName(name string) HandlerOption { return func(h *handlerConfig) { h.name = name } }

// WithTopic makes the handler consume from topic instead of the one the
// App's topic function gives.
func WithTopic(topic string) HandlerOption { return func(h *handlerConfig) { h.topic = topic } }

// WithOwned hands closers over to the App: a transport opened for it
// (adapters.Open's Transport), a store driver (postgres.Open, sqlite.Open
// ...). [App.Close] closes them last, after the router, the workers (relay,
// scheduler) and the components have stopped, in reverse order; if [New]
// fails, it closes them before it returns. The caller then closes only the
// App. Default: the App closes nothing it was given.
func WithOwned(closers ...io.Closer) Option {
	return func(c *config) { c.owned = append(c.owned, closers...) }
}
