// Package adapters opens a Hexeract transport from a URL, so an application
// switches between RabbitMQ, Kafka, NATS JetStream, PostgreSQL, Redis
// Streams, SQS and the in-memory transport by configuration:
//
//	t, err := adapters.Open(ctx, os.Getenv("HEXERACT_TRANSPORT"), adapters.WithGroup("billing"))
//	if err != nil { ... }
//	defer t.Close()
//	app, err := hexeract.New(hexeract.WithPubSub(t.Publisher, t.Subscriber))
//
// The scheme picks the transport; the query parameters are the transport's
// options (see each adapter's ParseURL). Every transport is a Watermill
// transport configured with production defaults by its own package under
// adapters/, which can also be used directly with a typed Config.
package adapters

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/adapters/amqp"
	"github.com/hexeract/hexeract/adapters/internal/urlopt"
	"github.com/hexeract/hexeract/adapters/kafka"
	"github.com/hexeract/hexeract/adapters/mem"
	"github.com/hexeract/hexeract/adapters/nats"
	"github.com/hexeract/hexeract/adapters/redis"
	hsql "github.com/hexeract/hexeract/adapters/sql"
	"github.com/hexeract/hexeract/adapters/sqs"
	"github.com/hexeract/hexeract/internal/wmlog"
)

// EnvTransport is the environment variable [OpenFromEnv] reads.
const EnvTransport = "HEXERACT_TRANSPORT"

// Transport is an opened transport: a Watermill publisher and subscriber.
type Transport struct {
	// Scheme is the URL scheme the transport was opened with ("amqp", "mem", ...).
	Scheme string
	// Publisher publishes messages; pass it to hexeract.WithPublisher.
	Publisher message.Publisher
	// Subscriber consumes messages; pass it to hexeract.WithSubscriber.
	Subscriber message.Subscriber

	closers []func() error
}

// Close closes the subscriber, then the publisher (and any connection pool
// the transport opened). It is safe to call more than once.
func (t *Transport) Close() error {
	var errs []error
	for _, c := range t.closers {
		errs = append(errs, c())
	}
	t.closers = nil
	return errors.Join(errs...)
}

// Option configures [Open].
type Option func(*options)

type options struct {
	group  string
	logger watermill.LoggerAdapter
}

// WithGroup sets the consumer group (the service's name, typically): the
// subscribers of one group share the work, every group gets every message.
// A group parameter in the URL takes precedence, so deployments can
// override it. Without either, each adapter's DefaultGroup ("hexeract") is used.
func WithGroup(group string) Option { return func(o *options) { o.group = group } }

// WithLogger makes the transport log to l, with the same levels as an App's
// logger: Watermill's errors (a connection lost, a read that failed) at
// error level, its life-cycle lines at debug level. Pass the App's logger
// so transport errors land next to the App's own lines. Without it (and
// without [WithWatermillLogger]) the transport logs to slog.Default(); nil
// means slog.Default() too. To log nothing, pass
// slog.New(slog.DiscardHandler).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = wmlog.New(l) }
}

// WithWatermillLogger sets a Watermill logger for the transport, for
// programs that already have one; [WithLogger] is the usual form. Pass
// watermill.NopLogger{} to log nothing.
func WithWatermillLogger(l watermill.LoggerAdapter) Option {
	return func(o *options) { o.logger = l }
}

// opener opens one scheme.
type opener func(ctx context.Context, rawURL string, o options) (*Transport, error)

var openers = map[string]opener{ //nolint:gochecknoglobals // the fixed scheme table, never written after init
	"amqp":       openAMQP,
	"amqps":      openAMQP,
	"kafka":      openKafka,
	"nats":       openNATS,
	"mem":        openMem,
	"sqs":        openSQS,
	"postgres":   openPostgres,
	"postgresql": openPostgres,
	"redis":      openRedis,
	"rediss":     openRedis,
}

// Schemes returns the URL schemes [Open] supports, sorted.
func Schemes() []string {
	s := make([]string, 0, len(openers))
	for k := range openers {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

func supported() string {
	return "supported: " + strings.Join(Schemes(), "://, ") + "://"
}

// Open opens the transport rawURL names:
//
//	amqp://user:pass@host:5672/vhost?group=NAME       RabbitMQ (adapters/amqp)
//	kafka://host:9092[,host:9092]/?group=NAME         Kafka (adapters/kafka)
//	nats://host:4222/?group=NAME                      NATS JetStream (adapters/nats)
//	postgres://user@host:5432/db?group=NAME           PostgreSQL (adapters/sql)
//	redis://host:6379/0?group=NAME                    Redis Streams (adapters/redis)
//	sqs://REGION/?endpoint=URL                        Amazon SQS (adapters/sqs)
//	mem://?group=NAME                                 a new in-process broker (adapters/mem)
//
// An unknown scheme or a malformed URL is an error that lists the supported
// schemes. Errors never contain the URL's password. Close the Transport when
// done.
func Open(ctx context.Context, rawURL string, opts ...Option) (*Transport, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = wmlog.New(slog.Default())
	}
	if strings.TrimSpace(rawURL) == "" {
		return nil, fmt.Errorf("hexeract: empty transport URL (%s)", supported())
	}
	u, err := urlopt.Parse("hexeract", rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, supported())
	}
	scheme := strings.ToLower(u.Scheme)
	open, ok := openers[scheme]
	if !ok {
		if scheme == "" {
			return nil, fmt.Errorf("hexeract: transport URL has no scheme (%s)", supported())
		}
		return nil, fmt.Errorf("hexeract: unknown transport scheme %q (%s)", scheme, supported())
	}
	t, err := open(ctx, rawURL, o)
	if err != nil {
		// Defence in depth: the adapters never put credentials in errors,
		// and whatever their clients say is scrubbed here too.
		return nil, errors.New(urlopt.Scrub(err.Error(), rawURL))
	}
	t.Scheme = scheme
	return t, nil
}

// OpenFromEnv opens the transport named by the HEXERACT_TRANSPORT
// environment variable; see [Open]. It is an error when the variable is unset.
func OpenFromEnv(ctx context.Context, opts ...Option) (*Transport, error) {
	raw := os.Getenv(EnvTransport)
	if raw == "" {
		return nil, fmt.Errorf("hexeract: %s is not set; set it to a transport URL such as mem:// or amqp://user:pass@host:5672/ (%s)", EnvTransport, supported())
	}
	t, err := Open(ctx, raw, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvTransport, err)
	}
	return t, nil
}

func group(cfgGroup string, o options) string {
	if cfgGroup != "" {
		return cfgGroup
	}
	return o.group
}

func pubSub(pub message.Publisher, sub message.Subscriber) *Transport {
	return &Transport{
		Publisher:  pub,
		Subscriber: sub,
		closers:    []func() error{sub.Close, pub.Close},
	}
}

func openAMQP(_ context.Context, rawURL string, o options) (*Transport, error) {
	cfg, err := amqp.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	cfg.Group = group(cfg.Group, o)
	pub, sub, err := amqp.New(cfg, o.logger)
	if err != nil {
		return nil, err
	}
	return pubSub(pub, sub), nil
}

func openKafka(_ context.Context, rawURL string, o options) (*Transport, error) {
	cfg, err := kafka.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	cfg.Group = group(cfg.Group, o)
	pub, sub, err := kafka.New(cfg, o.logger)
	if err != nil {
		return nil, err
	}
	return pubSub(pub, sub), nil
}

func openNATS(_ context.Context, rawURL string, o options) (*Transport, error) {
	cfg, err := nats.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	cfg.Group = group(cfg.Group, o)
	pub, sub, err := nats.New(cfg, o.logger)
	if err != nil {
		return nil, err
	}
	return pubSub(pub, sub), nil
}

// openMem opens a new in-process broker: mem://?group=NAME.
func openMem(_ context.Context, rawURL string, o options) (*Transport, error) {
	u, err := urlopt.Parse("mem", rawURL)
	if err != nil {
		return nil, err
	}
	q := urlopt.NewQuery("mem", u.Query())
	g := group(q.String("group", ""), o)
	if err := q.Err(true); err != nil {
		return nil, err
	}
	b := mem.New(mem.Config{Logger: o.logger})
	pub, sub := b.Publisher(), b.Subscriber(g)
	return &Transport{Publisher: pub, Subscriber: sub, closers: []func() error{sub.Close, pub.Close, b.Close}}, nil
}

// openSQS opens Amazon SQS. SQS has one queue per topic whose consumers
// compete for messages; it has no consumer groups, so a group parameter is
// accepted and ignored.
func openSQS(ctx context.Context, rawURL string, o options) (*Transport, error) {
	u, err := urlopt.Parse("sqs", rawURL)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	q.Del("group")
	u.RawQuery = q.Encode()
	pub, sub, err := sqs.Open(ctx, u.String(), o.logger)
	if err != nil {
		return nil, err
	}
	return pubSub(pub, sub), nil
}

// openPostgres opens PostgreSQL as a bus, on a pool of its own that Close closes.
func openPostgres(ctx context.Context, rawURL string, o options) (*Transport, error) {
	opts, err := hsql.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	opts.Group = group(opts.Group, o)
	pub, sub, pool, err := opts.Open(ctx, o.logger)
	if err != nil {
		return nil, err
	}
	t := pubSub(pub, sub)
	t.closers = append(t.closers, func() error { pool.Close(); return nil })
	return t, nil
}

// openRedis opens Redis Streams, on a client of its own that Close closes.
func openRedis(ctx context.Context, rawURL string, o options) (*Transport, error) {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	opts.Group = group(opts.Group, o)
	pub, sub, client, err := opts.Open(ctx, o.logger)
	if err != nil {
		return nil, err
	}
	t := pubSub(pub, sub)
	t.closers = append(t.closers, client.Close)
	return t, nil
}
