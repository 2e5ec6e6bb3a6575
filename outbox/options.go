package outbox

import (
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/hexeract/hexeract/router"
)

// DefaultTable is the outbox table used when no [WithTable] option is given.
const DefaultTable = "hexeract_outbox"

// DefaultInboxTable is the inbox table used when no [WithInboxTable] option is given.
const DefaultInboxTable = "hexeract_inbox"

// Option configures an [Outbox] built by [New]. Options that also configure
// a [Relay] (such as [WithTable]) implement [RelayOption] as well, so the
// same value can be passed to both constructors.
type Option interface{ applyOutbox(*outboxConfig) }

// RelayOption configures a [Relay] built by [NewRelay].
type RelayOption interface{ applyRelay(*relayConfig) }

// InboxOption configures an [Inbox] built by [NewInbox].
type InboxOption interface{ applyInbox(*inboxConfig) }

type outboxConfig struct {
	table   string
	codec   router.Codec
	source  string
	topic   router.TopicFunc
	topics  router.TopicNaming
	notify  notifyMode
	keyLock bool
	tracer  trace.TracerProvider
}

type notifyMode uint8

const (
	notifyAfterCommit notifyMode = iota // Signal sends pg_notify outside the producer's tx
	notifyInTx                          // Publish sends pg_notify in the producer's tx
	notifyOff
)

type relayConfig struct {
	table        string
	batchSize    int
	workers      int
	pollInterval time.Duration
	maxAttempts  int
	backoffMin   time.Duration
	backoffMax   time.Duration
	lease        time.Duration
	retention    time.Duration
	listen       bool
	syncCommit   bool
	statsEvery   time.Duration
	logger       *slog.Logger
	meter        metric.MeterProvider
	tracer       trace.TracerProvider
}

type inboxConfig struct {
	signal    []Signaler
	table     string
	retention time.Duration
	logger    *slog.Logger
}

// TableOption names the outbox table. It configures both an [Outbox] and a
// [Relay]; see [WithTable].
type TableOption string

func (t TableOption) applyOutbox(c *outboxConfig) { c.table = string(t) }
func (t TableOption) applyRelay(c *relayConfig)   { c.table = string(t) }

// WithTable sets the outbox table: "name" or "schema.name", lower-case
// letters, digits and underscores (see the package documentation). The
// default is [DefaultTable]. Two more tables are derived from it:
// name_dead (dead rows) and name_delivered (delivered rows kept for
// [WithRetention]). Several outboxes can live in one database under
// different names. The name is validated by [New] and [NewRelay] before any
// SQL is built.
func WithTable(name string) TableOption { return TableOption(name) }

type outboxOptionFunc func(*outboxConfig)

func (f outboxOptionFunc) applyOutbox(c *outboxConfig) { f(c) }

// WithCodec sets the payload codec used by [Outbox.Publish]; the default is
// JSON. Use the same codec as the consuming App.
func WithCodec(codec router.Codec) Option {
	return outboxOptionFunc(func(c *outboxConfig) { c.codec = codec })
}

// WithSource sets the CloudEvents source (ce_source) of messages written by
// [Outbox.Publish], typically the service name.
func WithSource(source string) Option {
	return outboxOptionFunc(func(c *outboxConfig) { c.source = source })
}

// WithTopicFunc maps a message type's wire name to the topic the relay
// publishes it on; the default topic is the wire name (as in hexeract.App).
func WithTopicFunc(f router.TopicFunc) Option {
	return outboxOptionFunc(func(c *outboxConfig) { c.topic, c.topics = f, nil })
}

// WithTopicNaming names topics as n does (the topic of a wire name is
// n.Topic); give it the App's naming, outbox.WithTopicNaming(app.Topics()),
// so the outbox, the App and the scheduler (which takes the naming of its
// outbox sink) never disagree. A later WithTopicFunc overrides n's topic
// function.
func WithTopicNaming(n router.TopicNaming) Option {
	return outboxOptionFunc(func(c *outboxConfig) {
		if n != nil {
			c.topics, c.topic = n, n.Topic
		}
	})
}

// WithoutNotify stops [Outbox.Signal] from sending notifications through
// the store (PostgreSQL NOTIFY; MySQL and SQLite notify in process only). Relays in other processes then find new rows by polling;
// relays in the same process are still woken by Signal. Use it when a
// connection pooler in transaction mode drops notifications anyway.
func WithoutNotify() Option {
	return outboxOptionFunc(func(c *outboxConfig) { c.notify = notifyOff })
}

// WithNotifyInTx makes [Outbox.Publish] send the PostgreSQL notification
// inside the producer's transaction (pg_notify, delivered at commit), so
// relays in every process wake at commit even when the producer never
// calls [Outbox.Signal]. The price: PostgreSQL serialises the commits of
// all transactions that notify, cluster-wide, until their WAL is flushed,
// which adds latency to every producer transaction under concurrency (see
// docs/performance.md). The default sends the notification from
// Signal instead, outside the producer's transaction.
func WithNotifyInTx() Option {
	return outboxOptionFunc(func(c *outboxConfig) { c.notify = notifyInTx })
}

// WithoutKeyLock stops [Outbox.Publish] from taking a transaction-scoped
// advisory lock per ordering key. Without the lock, two concurrent
// transactions that write messages with the same ordering key may commit in
// the opposite order of their outbox rows, and the relay delivers them in
// row order. Keep the lock unless the producer already serialises writes per
// key (for example with SELECT ... FOR UPDATE on the aggregate row).
func WithoutKeyLock() Option {
	return outboxOptionFunc(func(c *outboxConfig) { c.keyLock = false })
}

type relayOptionFunc func(*relayConfig)

func (f relayOptionFunc) applyRelay(c *relayConfig) { f(c) }

// WithBatchSize sets how many rows a relay worker claims per transaction
// (default 256, 1 to 10000). Larger batches drain a backlog faster; each
// batch is one claim statement and one commit.
func WithBatchSize(n int) RelayOption {
	return relayOptionFunc(func(c *relayConfig) { c.batchSize = n })
}

// WithWorkers sets how many batches a relay processes concurrently, each on
// its own database connection (default 4). Rows are never claimed by two
// workers (or two relays) at once.
func WithWorkers(n int) RelayOption { return relayOptionFunc(func(c *relayConfig) { c.workers = n }) }

// WithPollInterval sets how often an idle relay looks for rows without
// being woken by a notification (default 1s). Polling covers lost
// notifications and rows whose retry time has come.
func WithPollInterval(d time.Duration) RelayOption {
	return relayOptionFunc(func(c *relayConfig) { c.pollInterval = d })
}

// WithMaxAttempts sets how many failed publish attempts make a row dead
// (default 10). Dead rows move to the dead table, stay there until replayed
// or purged, and no longer hold back rows with the same ordering key.
func WithMaxAttempts(n int) RelayOption {
	return relayOptionFunc(func(c *relayConfig) { c.maxAttempts = n })
}

// WithBackoff sets the exponential backoff between publish attempts of a
// row: min after the first failure, doubling up to max (defaults 1s and
// 5m), with up to 20% random jitter. Retry times count from the failure,
// on the database clock.
func WithBackoff(min, max time.Duration) RelayOption {
	return relayOptionFunc(func(c *relayConfig) { c.backoffMin, c.backoffMax = min, max })
}

// WithLease sets how long a relay may keep a claimed batch while it waits
// for the broker (default 30s). On PostgreSQL the claiming transaction
// stays open during the publish, and PostgreSQL ends a relay session that
// stays idle in that transaction longer than the lease
// (idle_in_transaction_session_timeout, measured on the database server's
// clock), and the batch's rows become claimable again. On MySQL/MariaDB and
// SQLite the claimed rows carry the lease's expiry: once it passed (a relay
// that died, or hung), another relay claims them again.
func WithLease(d time.Duration) RelayOption {
	return relayOptionFunc(func(c *relayConfig) { c.lease = d })
}

// WithRetention keeps delivered rows in the name_delivered table for d
// before the relay deletes them in batches. The default (0) deletes
// delivered rows at once, which is the fastest.
func WithRetention(d time.Duration) RelayOption {
	return relayOptionFunc(func(c *relayConfig) { c.retention = d })
}

// WithoutListen stops the relay from listening for PostgreSQL notifications;
// it then polls (and reacts to [Outbox.Signal] in the same process).
func WithoutListen() RelayOption { return relayOptionFunc(func(c *relayConfig) { c.listen = false }) }

// WithStatsInterval sets how often the relay refreshes the pending-row and
// dead-row gauges (default 5s).
func WithStatsInterval(d time.Duration) RelayOption {
	return relayOptionFunc(func(c *relayConfig) { c.statsEvery = d })
}

// WithMeterProvider sets the OpenTelemetry meter provider of a relay; the
// default is the global one.
func WithMeterProvider(mp metric.MeterProvider) RelayOption {
	return relayOptionFunc(func(c *relayConfig) { c.meter = mp })
}

// TracerProviderOption sets the OpenTelemetry tracer provider of an
// [Outbox] (its "create" spans) and of a [Relay] (its "publish" spans); see
// [WithTracerProvider].
type TracerProviderOption struct{ tp trace.TracerProvider }

func (o TracerProviderOption) applyOutbox(c *outboxConfig) { c.tracer = o.tp }
func (o TracerProviderOption) applyRelay(c *relayConfig)   { c.tracer = o.tp }

// WithTracerProvider sets the OpenTelemetry tracer provider of an outbox's
// producer "create" spans ([Outbox.Publish], [Outbox.PublishMessages]) and
// of a relay's "publish" spans; the default (nil) is the global one,
// otel.GetTracerProvider(). The same value can be passed to [New] and
// [NewRelay].
func WithTracerProvider(tp trace.TracerProvider) TracerProviderOption {
	return TracerProviderOption{tp: tp}
}

// LoggerOption sets the logger of a [Relay] or an [Inbox]; see [WithLogger].
type LoggerOption struct{ l *slog.Logger }

func (o LoggerOption) applyRelay(c *relayConfig) { c.logger = o.l }
func (o LoggerOption) applyInbox(c *inboxConfig) { c.logger = o.l }

// WithLogger sets the logger of a relay or an inbox; the default is
// [slog.Default].
func WithLogger(l *slog.Logger) LoggerOption { return LoggerOption{l: l} }

type inboxOptionFunc func(*inboxConfig)

func (f inboxOptionFunc) applyInbox(c *inboxConfig) { f(c) }

// WithInboxTable sets the inbox table ("name" or "schema.name"); the
// default is [DefaultInboxTable].
func WithInboxTable(name string) InboxOption {
	return inboxOptionFunc(func(c *inboxConfig) { c.table = name })
}

// WithInboxRetention sets how long [Inbox.Cleanup] keeps inbox rows
// (default 7 days). A message redelivered after its inbox row was removed
// runs again, so keep rows longer than the broker can redeliver.
func WithInboxRetention(d time.Duration) InboxOption {
	return inboxOptionFunc(func(c *inboxConfig) { c.retention = d })
}

// WithSynchronousCommit makes the relay's transactions wait for their WAL
// flush, like ordinary transactions. By default the relay runs its sessions
// with synchronous_commit = off: a relay transaction only removes rows that
// the broker already acknowledged (or records a failed attempt), so losing
// the last few hundred milliseconds of relay commits in a database crash
// only makes those rows be delivered again, which at-least-once delivery
// allows. The producer's transactions are not affected.
func WithSynchronousCommit() RelayOption {
	return relayOptionFunc(func(c *relayConfig) { c.syncCommit = true })
}

// Signaler is what [WithSignal] calls after a commit: an [Outbox].
type Signaler interface{ Signal() }

// WithSignal makes the inbox call [Outbox.Signal] on each of obs after a
// handler's transaction commits, so the messages the handler published
// through those outboxes are relayed at once.
func WithSignal(obs ...Signaler) InboxOption {
	return inboxOptionFunc(func(c *inboxConfig) { c.signal = append(c.signal, obs...) })
}
