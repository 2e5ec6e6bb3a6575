// Package dlq inspects and moves the dead letters that Hexeract's DeadLetter
// middleware left on broker dead-letter topics ("<topic>.dlq"), on every
// transport adapters.Open supports except the in-memory one, without
// disturbing the broker:
//
//   - [Broker.List] and [Broker.Count] are reads: they never declare,
//     create, bind, consume, re-publish or commit anything. Each transport
//     reads its own way: RabbitMQ with a passive queue declare and basic.get
//     without ack, every message then given back with basic.nack requeue (the
//     queue keeps its messages and order; the redelivered flag of the
//     messages read is set); NATS JetStream with direct stream reads by
//     sequence (no consumer at all); Redis Streams with XRANGE and XINFO;
//     Kafka with a franz-go client that consumes partitions by offset and
//     commits nothing; the PostgreSQL bus with SELECTs on watermill-sql's
//     tables; SQS with ReceiveMessage and a visibility timeout, each message
//     made visible again at once (ChangeMessageVisibility 0) - SQS has no
//     peek, so a read increases each message's ApproximateReceiveCount.
//   - [Broker.Move] makes one pass over the dead letters present when it
//     starts and stops, so a message whose handler still fails and that is
//     dead-lettered again during the move is not moved a second time. It
//     refuses, before moving anything, a destination that has no
//     subscriber. Each dead letter is published to its original topic (or
//     MoveOptions.To), without its fault metadata, and only then removed
//     from the dead-letter topic.
//   - An unknown topic or group is an [*UnknownError] listing the existing
//     ones.
//
// The hexeract CLI ("hexeract dlq list|count|move") is built on this
// package, and so will the operations console be.
package dlq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/adapters"
	"github.com/hexeract/hexeract/adapters/internal/urlopt"
	"github.com/hexeract/hexeract/middleware"
)

// ErrUnknown is matched (errors.Is) by every [*UnknownError].
var ErrUnknown = errors.New("dlq: unknown topic or group")

// ErrNoSubscriber is matched (errors.Is) by the error [Broker.Move] returns
// when a destination topic has no subscriber: nothing was moved.
var ErrNoSubscriber = errors.New("dlq: destination has no subscriber")

// UnknownError reports a dead-letter topic or a consumer group that does not
// exist on the broker, with the ones that do.
type UnknownError struct {
	// Kind is "topic" or "group".
	Kind string
	// Name is the topic or group asked for.
	Name string
	// Topic is the topic of an unknown group.
	Topic string
	// Existing are the dead-letter topics (Kind "topic": the topics ending
	// in ".dlq", or every topic when none does) or the groups of Topic.
	Existing []string
}

// Error says what is unknown and lists what exists.
func (e *UnknownError) Error() string {
	existing := "none"
	if len(e.Existing) > 0 {
		existing = strings.Join(e.Existing, ", ")
	}
	if e.Kind == "group" {
		return fmt.Sprintf("dlq: group %q does not exist on %q; existing groups: %s", e.Name, e.Topic, existing)
	}
	return fmt.Sprintf("dlq: topic %q does not exist; existing dead-letter topics: %s", e.Name, existing)
}

// Is makes errors.Is(err, ErrUnknown) true.
func (e *UnknownError) Is(target error) bool { return target == ErrUnknown }

// Query selects the dead letters of a topic.
type Query struct {
	// Group is the consumer group. On RabbitMQ it picks the group's queue
	// "<topic>_<group>" (empty: the adapter's default group, "hexeract").
	// On Kafka, NATS JetStream, Redis Streams and the PostgreSQL bus it
	// reads only what the group has not acknowledged yet (empty: every
	// message of the topic). SQS has no groups and refuses one.
	Group string
	// Limit stops after this many messages; 0 means no limit.
	Limit int
}

// MoveOptions configure [Broker.Move].
type MoveOptions struct {
	// Group is as in Query. On Kafka it is required: the group's committed
	// offsets record what was moved (the dead letters cannot be deleted
	// from a Kafka topic), and a move never starts a new group at the
	// beginning of the topic.
	Group string
	// To publishes every dead letter to this topic instead of its original
	// topic (hexeract_fault_topic, or Watermill's topic_poisoned).
	To string
	// NewGroup (Kafka only) lets Group name a group that has no offsets on
	// the topic yet: it starts at the oldest record. Without it an unknown
	// group is an *UnknownError, so a mistyped group never replays the
	// whole topic.
	NewGroup bool
	// Limit stops after this many messages; 0 means every dead letter
	// present when the move starts.
	Limit int
	// Moved, when set, is called after each dead letter was moved.
	Moved func(dead *message.Message, to string)
}

// MoveResult reports what [Broker.Move] did.
type MoveResult struct {
	// Moved counts the messages moved per destination topic.
	Moved map[string]int
	// Total is the number of messages moved.
	Total int
}

// Broker inspects and moves the dead letters of one transport. It is safe
// for one goroutine at a time; Close it when done.
type Broker struct {
	scheme string
	d      driver
}

// driver is one transport's implementation.
type driver interface {
	// topics returns the existing topics (queues, streams, tables...).
	topics(ctx context.Context) ([]string, error)
	// check returns an *UnknownError when topic (or group on it) does not exist.
	check(ctx context.Context, topic, group string) error
	// list calls fn for each dead letter of topic, oldest first, up to limit.
	list(ctx context.Context, topic, group string, limit int, fn func(*message.Message) error) error
	// count returns the number of dead letters of topic.
	count(ctx context.Context, topic, group string) (int, error)
	// subscribed reports whether a message published to topic now reaches
	// at least one subscriber.
	subscribed(ctx context.Context, topic string) (bool, error)
	// move makes one pass over the dead letters of topic present when it
	// starts: for each, next says where it goes and what to publish; move
	// publishes it and only then removes the dead letter, then calls done.
	// When ctx is cancelled it finishes or gives back the message in hand
	// and returns ctx.Err().
	move(ctx context.Context, topic, group string, limit int, next func(*message.Message) (string, *message.Message, error), done func(*message.Message, string)) error
	close() error
}

// Option configures [Open].
type Option func(*options)

type options struct {
	managementURL string
}

// WithManagementURL sets the RabbitMQ management API base URL
// (http://user:password@host:15672/api) used to list the existing queues and
// bindings for [UnknownError] and to check that a destination has a bound
// queue. By default it is derived from the AMQP URL (same host, user and
// password, port 15672, the vhost of the URL).
func WithManagementURL(u string) Option { return func(o *options) { o.managementURL = u } }

// Open connects to the transport rawURL names (any adapters.Open URL but
// mem://, whose broker lives in the process that opened it). It creates
// nothing on the broker.
func Open(ctx context.Context, rawURL string, opts ...Option) (*Broker, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if strings.TrimSpace(rawURL) == "" {
		return nil, fmt.Errorf("dlq: empty transport URL (supported: %s)", supported())
	}
	u, err := urlopt.Parse("dlq", rawURL)
	if err != nil {
		return nil, err
	}
	scheme := strings.ToLower(u.Scheme)
	var d driver
	switch scheme {
	case "amqp", "amqps":
		d, err = openAMQP(ctx, rawURL, o)
	case "nats", "tls":
		d, err = openNATS(ctx, rawURL)
	case "redis", "rediss":
		d, err = openRedis(ctx, rawURL)
	case "kafka":
		d, err = openKafka(ctx, rawURL)
	case "postgres", "postgresql":
		d, err = openPostgres(ctx, rawURL)
	case "sqs":
		d, err = openSQS(ctx, rawURL)
	case "mem":
		return nil, errors.New("dlq: mem:// is a broker inside the process that opened it; inspect its dead letters from that process (subscribe to the dead-letter topic)")
	default:
		return nil, fmt.Errorf("dlq: unknown transport scheme %q (supported: %s)", scheme, supported())
	}
	if err != nil {
		return nil, errors.New(urlopt.Scrub(err.Error(), rawURL))
	}
	return &Broker{scheme: scheme, d: d}, nil
}

func supported() string {
	s := slices.DeleteFunc(adapters.Schemes(), func(s string) bool { return s == "mem" })
	return strings.Join(s, "://, ") + "://"
}

// Close closes the connections.
func (b *Broker) Close() error { return b.d.close() }

// Scheme returns the transport's URL scheme.
func (b *Broker) Scheme() string { return b.scheme }

// Topics returns the dead-letter topics on the broker: those ending in
// ".dlq" (RabbitMQ: from the management API).
func (b *Broker) Topics(ctx context.Context) ([]string, error) {
	all, err := b.d.topics(ctx)
	if err != nil {
		return nil, err
	}
	return dlqTopics(all), nil
}

// dlqTopics keeps the topics ending in the dead-letter suffix; when there is
// none, all of them (a custom DeadLetterOptions.Topic).
func dlqTopics(all []string) []string {
	var out []string
	for _, t := range all {
		// SQS queue names turn "." into "-".
		if strings.HasSuffix(t, middleware.DefaultDLQSuffix) || strings.HasSuffix(t, "-dlq") {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		out = all
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// List calls fn for each dead letter of topic, oldest first, leaving the
// broker as it was. An unknown topic or group is an *UnknownError. fn may
// stop the listing by returning an error, which List returns.
func (b *Broker) List(ctx context.Context, topic string, q Query, fn func(*message.Message) error) error {
	if err := b.d.check(ctx, topic, q.Group); err != nil {
		return err
	}
	return b.d.list(ctx, topic, q.Group, q.Limit, fn)
}

// Count returns the number of dead letters of topic (what List without a
// limit would print). An unknown topic or group is an *UnknownError.
func (b *Broker) Count(ctx context.Context, topic string, q Query) (int, error) {
	if err := b.d.check(ctx, topic, q.Group); err != nil {
		return 0, err
	}
	n, err := b.d.count(ctx, topic, q.Group)
	if q.Limit > 0 && n > q.Limit {
		n = q.Limit
	}
	return n, err
}

// Move publishes the dead letters of topic back to their original topic (or
// o.To) and removes them from topic, in one pass over what was there when it
// started. Before moving anything it checks every destination (the
// distinct original topics of the dead letters, or o.To) and refuses one
// without a subscriber with an error matching ErrNoSubscriber. A dead
// letter without an original topic stops the move (pass To). When ctx is
// cancelled (SIGINT), the message in hand is finished or given back, and
// Move returns what was done with ctx.Err().
func (b *Broker) Move(ctx context.Context, topic string, o MoveOptions) (MoveResult, error) {
	res := MoveResult{Moved: map[string]int{}}
	checkGroup := o.Group
	if o.NewGroup {
		if b.scheme != "kafka" {
			return res, errors.New("dlq: a new group is for Kafka only (elsewhere a move deletes what it moved and needs no group)")
		}
		checkGroup = ""
	}
	if err := b.d.check(ctx, topic, checkGroup); err != nil {
		return res, err
	}
	// Destinations first: a read-only pass collects them.
	dests := map[string]bool{}
	if o.To != "" {
		dests[o.To] = true
	} else {
		err := b.d.list(ctx, topic, o.Group, o.Limit, func(m *message.Message) error {
			_, to, err := middleware.Revive(m, "")
			if err != nil {
				return fmt.Errorf("dead letter %s: %w; pass a destination topic (--to)", m.UUID, err)
			}
			dests[to] = true
			return nil
		})
		if err != nil {
			return res, err
		}
	}
	for to := range dests {
		if to == topic {
			return res, fmt.Errorf("dlq: dead letters of %q would be moved onto %q itself", topic, to)
		}
		ok, err := b.d.subscribed(ctx, to)
		if err != nil {
			return res, fmt.Errorf("dlq: check subscribers of %q: %w", to, err)
		}
		if !ok {
			return res, fmt.Errorf("%w: nothing moved: %q has no subscriber (%s), so the dead letters would be lost or wait for nobody; start the consumer first or pass another destination",
				ErrNoSubscriber, to, noSubscriberHint(b.scheme))
		}
	}
	next := func(dead *message.Message) (string, *message.Message, error) {
		msg, to, err := middleware.Revive(dead, o.To)
		if err != nil {
			return "", nil, fmt.Errorf("dead letter %s: %w; pass a destination topic (--to)", dead.UUID, err)
		}
		if to == topic {
			return "", nil, fmt.Errorf("dlq: dead letter %s would be moved onto %q itself", dead.UUID, topic)
		}
		if !dests[to] {
			ok, err := b.d.subscribed(ctx, to)
			if err != nil {
				return "", nil, fmt.Errorf("dlq: check subscribers of %q: %w", to, err)
			}
			if !ok {
				return "", nil, fmt.Errorf("%w: %q has no subscriber (%s); dead letter %s left in place", ErrNoSubscriber, to, noSubscriberHint(b.scheme), dead.UUID)
			}
			dests[to] = true
		}
		// Transport delivery state must not travel back with the message.
		for k := range msg.Metadata {
			if strings.HasPrefix(k, "_watermill_") {
				delete(msg.Metadata, k)
			}
		}
		return to, msg, nil
	}
	done := func(dead *message.Message, to string) {
		res.Moved[to]++
		res.Total++
		if o.Moved != nil {
			o.Moved(dead, to)
		}
	}
	err := b.d.move(ctx, topic, o.Group, o.Limit, next, done)
	return res, err
}

func noSubscriberHint(scheme string) string {
	switch scheme {
	case "amqp", "amqps":
		return "no queue is bound to its exchange"
	case "nats", "tls":
		return "its stream has no consumer"
	case "redis", "rediss":
		return "its stream has no consumer group"
	case "kafka":
		return "no consumer group has offsets on it or is subscribed to it"
	case "postgres", "postgresql":
		return "no subscriber created its offsets table"
	case "sqs":
		return "its queue does not exist"
	}
	return ""
}

// unknownTopic is the error for a dead-letter topic that does not exist: an
// [*UnknownError] listing the dead-letter topics that do (or topics' error).
func unknownTopic(ctx context.Context, topic string, topics func(context.Context) ([]string, error)) error {
	all, err := topics(ctx)
	if err != nil {
		return err
	}
	return &UnknownError{Kind: "topic", Name: topic, Existing: dlqTopics(all)}
}

// checkGroup returns nil when group is empty or one of groups(ctx, topic),
// else an [*UnknownError] listing them.
func checkGroup(ctx context.Context, topic, group string, groups func(context.Context, string) ([]string, error)) error {
	if group == "" {
		return nil
	}
	gs, err := groups(ctx, topic)
	if err != nil {
		return err
	}
	if slices.Contains(gs, group) {
		return nil
	}
	return &UnknownError{Kind: "group", Name: group, Topic: topic, Existing: gs}
}

// republish publishes dead where next sends it, the first step of every
// driver's move (each then removes dead from the dead-letter topic its own
// way). It returns the destination topic.
func republish(pub message.Publisher, topic string, dead *message.Message, next func(*message.Message) (string, *message.Message, error)) (string, error) {
	to, out, err := next(dead)
	if err != nil {
		return "", err
	}
	if err := pub.Publish(to, out); err != nil {
		return "", fmt.Errorf("dlq: publish %s to %q (left in %q): %w", dead.UUID, to, topic, err)
	}
	return to, nil
}

// decoded adapts fn to a driver's raw records: each is decoded with decode
// before fn sees it.
func decoded[R any](decode func(R) (*message.Message, error), fn func(*message.Message) error) func(R) error {
	return func(r R) error {
		m, err := decode(r)
		if err != nil {
			return err
		}
		return fn(m)
	}
}
