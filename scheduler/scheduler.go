package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/go-co-op/gocron/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/hexeract/hexeract/internal/msgtrace"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/store"
)

// router.KeyDueAt is the metadata key the scheduler sets on every message it hands
// off: the time (RFC 3339, UTC) the message was due.
//
// Deprecated: use router.KeyDueAt.
const KeyDueAt = router.KeyDueAt

// Metadata keys the scheduler keeps on a message the sink refused (see
// [Scheduler.Run]); they are removed before the message is handed off.
const (
	keyAttempts  = router.KeyScheduleRefusals
	keyLastError = router.KeyScheduleLastError
)

// ErrNotFound is returned by Cancel and Reschedule when no pending scheduled
// message has the id: it was never scheduled, was cancelled, or is already
// handed off.
var ErrNotFound = errors.New("scheduler: no pending scheduled message with this id")

// Sink receives due messages. The poller calls PublishMessagesWith inside
// the transaction that deletes the messages from the scheduler table (ex is
// that transaction), so a sink that writes into the same database (the
// transactional outbox) makes the hand-off atomic: a crash before the
// commit leaves the messages scheduled, a crash after it leaves them in the
// outbox, never both and never neither. *outbox.Outbox is such a sink;
// [PublisherSink] publishes directly instead (at-least-once). When the sink
// also has a Signal() method, the poller calls it after each committed
// hand-off; the outbox uses it to wake its relays in this process at once.
type Sink interface {
	PublishMessagesWith(ctx context.Context, ex store.Executor, topic string, msgs ...*message.Message) error
}

// SinkFunc adapts a function to [Sink].
type SinkFunc func(ctx context.Context, ex store.Executor, topic string, msgs ...*message.Message) error

// PublishMessagesWith calls f.
func (f SinkFunc) PublishMessagesWith(ctx context.Context, ex store.Executor, topic string, msgs ...*message.Message) error {
	return f(ctx, ex, topic, msgs...)
}

// PublisherSink returns a [Sink] that publishes due messages directly on a
// Watermill publisher, inside the claiming transaction but before its commit.
// Delivery is at-least-once: if the process dies after the publisher
// acknowledged and before the commit, the messages are handed off again by
// the next poll (consumers should be idempotent, for example with the inbox).
// Prefer the outbox as sink when the broker is not the database.
func PublisherSink(p message.Publisher) Sink {
	return SinkFunc(func(_ context.Context, _ store.Executor, topic string, msgs ...*message.Message) error {
		return p.Publish(topic, msgs...)
	})
}

// Scheduler stores delayed messages in a database (any storage driver:
// PostgreSQL, MySQL/MariaDB, SQLite) and hands them to a [Sink]
// when they are due; it also runs cron schedules that fire once per tick
// across all replicas. Build it with [New]; run its poller with
// [Scheduler.Run] (it satisfies hexeract.Worker). Any number of Schedulers
// on the same table may run side by side, in one process or many. TTx is
// the driver's transaction type (pgx.Tx for PostgreSQL, *sql.Tx for the
// database/sql drivers): the typed methods schedule in the caller's
// business transaction.
type Scheduler[TTx any] struct {
	drv    store.Driver[TTx]
	sink   Sink
	t      tables
	cfg    config
	wakeCh chan struct{}
	m      *metrics
	wakeMu sync.Mutex
	wakeAt time.Time // earliest due time announced since the poller last looked; zero: unknown

	create *msgtrace.Creator

	cron     gocron.Scheduler // created by the first Cron call; shut down when Run returns
	elector  *leaseElector
	mu       sync.Mutex
	jobs     map[string]bool
	running  bool
	stopHook func() // tests: simulate a crash (skip the lease release)
}

type config struct {
	table        string
	codec        router.Codec
	source       string
	topic        router.TopicFunc
	batchSize    int
	workers      int
	pollInterval time.Duration
	logger       *slog.Logger
	location     *time.Location
	leaseTTL     time.Duration
	instanceID   string
	notify       bool
	meter        metric.MeterProvider
	tracer       trace.TracerProvider
}

// Option configures a [Scheduler].
type Option func(*config)

// DefaultTable is the table of scheduled messages when [WithTable] is not
// given.
const DefaultTable = "hexeract_scheduled"

// WithTable sets the table of scheduled messages (default [DefaultTable],
// "hexeract_scheduled"; "schema.table" allowed). The fired-ticks and lease
// tables are named after it with the suffixes _ticks and _leases.
func WithTable(name string) Option { return func(c *config) { c.table = name } }

// WithCodec sets the payload codec of typed messages (default JSON).
func WithCodec(codec router.Codec) Option { return func(c *config) { c.codec = codec } }

// WithSource sets the CloudEvents source of typed messages (default "hexeract").
func WithSource(source string) Option { return func(c *config) { c.source = source } }

// WithTopicFunc sets how a typed message's wire name maps to its topic
// (default: the naming of the sink when it has one, as the outbox does,
// else the wire name).
func WithTopicFunc(f router.TopicFunc) Option { return func(c *config) { c.topic = f } }

// WithTopicNaming names the topics of typed messages as n does, for example
// scheduler.WithTopicNaming(app.Topics()). Without it (and without
// WithTopicFunc) a scheduler whose sink is an outbox takes the outbox's
// naming (outbox.WithTopicNaming), so the naming is given once.
func WithTopicNaming(n router.TopicNaming) Option {
	return func(c *config) {
		if n != nil {
			c.topic = n.Topic
		}
	}
}

// WithBatchSize sets how many due messages one claim transaction takes
// (default 500).
func WithBatchSize(n int) Option { return func(c *config) { c.batchSize = n } }

// WithWorkers sets how many hand-off transactions one poller keeps in flight
// (default 2): the next claim starts as soon as the previous claim statement
// returned, while that batch is handed to the sink and committed.
func WithWorkers(n int) Option { return func(c *config) { c.workers = n } }

// WithPollInterval sets the longest time the poller sleeps without looking at
// the table (default 500 ms). The poller normally wakes exactly when the next
// message is due. Schedule announces a message with NOTIFY only when it is
// due within the poll interval (a later one is found by the poller's next
// look, which then sleeps exactly until it), so the interval also bounds how
// many Schedule transactions notify; it is the fallback when a notification
// is lost.
func WithPollInterval(d time.Duration) Option { return func(c *config) { c.pollInterval = d } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithLocation sets the time zone cron specs are evaluated in (default UTC).
// A spec may also carry its own zone: "CRON_TZ=Europe/Paris 0 0 9 * * *".
func WithLocation(loc *time.Location) Option { return func(c *config) { c.location = loc } }

// WithLeaseTTL sets how long the cron leader's lease lasts without renewal
// (default 10 s). When the leader dies, another replica takes over cron
// firing within this time. The lease expiry is measured on the database
// clock, so replicas' clocks need not agree.
func WithLeaseTTL(d time.Duration) Option { return func(c *config) { c.leaseTTL = d } }

// WithInstanceID names this replica in the lease and fired-ticks tables
// (default host name, process id and a random suffix).
func WithInstanceID(id string) Option { return func(c *config) { c.instanceID = id } }

// WithoutNotify stops Schedule and Reschedule from announcing messages due
// within the poll interval (a NOTIFY on PostgreSQL, an in-process signal on
// the other drivers). PostgreSQL serialises the commits of
// transactions that notify, so at thousands of Schedule calls per second the
// notifications cost throughput; without them a message due earlier than the
// poller's planned wake-up waits until the poller next looks, at most the
// poll interval: pair it with a short WithPollInterval (for example 50 ms).
func WithoutNotify() Option { return func(c *config) { c.notify = false } }

// WithTracerProvider sets the OpenTelemetry tracer provider of the
// producer "create" spans that [Scheduler.Schedule], [Scheduler.After] and
// [Scheduler.ScheduleMessages] start for each message they store; the
// default (nil) is the global one, otel.GetTracerProvider().
func WithTracerProvider(tp trace.TracerProvider) Option { return func(c *config) { c.tracer = tp } }

// New returns a Scheduler storing messages in drv's database and handing
// due messages to sink. It checks the configuration but does not touch the
// database; create the tables with [Scheduler.Migrate] or `hexeract migrate
// up` before [Scheduler.Run]. Code holding only a store.Store passes
// store.Untyped(st).
func New[TTx any](drv store.Driver[TTx], sink Sink, opts ...Option) (*Scheduler[TTx], error) {
	if isNil(drv) {
		return nil, errors.New("scheduler: nil store driver; pass postgres.New(pool), mysql.Open(...), sqlite.Open(...) or store.Untyped(st)")
	}
	if sink == nil {
		return nil, errors.New("scheduler: nil sink; pass the outbox (outbox.New) or scheduler.PublisherSink(publisher)")
	}
	host, _ := os.Hostname()
	cfg := config{
		table:        DefaultTable,
		codec:        router.JSON{},
		source:       router.DefaultSource,
		batchSize:    500,
		workers:      2,
		pollInterval: 500 * time.Millisecond,
		location:     time.UTC,
		leaseTTL:     10 * time.Second,
		instanceID:   fmt.Sprintf("%s-%d-%s", host, os.Getpid(), router.NewID()[24:]),
		notify:       true,
	}
	if tn, ok := sink.(interface{ Topics() router.TopicNaming }); ok && tn.Topics() != nil {
		cfg.topic = tn.Topics().Topic
	} else {
		cfg.topic = router.DefaultTopic
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	switch {
	case cfg.batchSize < 1:
		return nil, fmt.Errorf("scheduler: batch size %d; use scheduler.WithBatchSize with at least 1", cfg.batchSize)
	case cfg.workers < 1:
		return nil, fmt.Errorf("scheduler: %d workers; use scheduler.WithWorkers with at least 1", cfg.workers)
	case cfg.pollInterval <= 0:
		return nil, fmt.Errorf("scheduler: poll interval %s; use scheduler.WithPollInterval with a positive duration", cfg.pollInterval)
	case cfg.leaseTTL < 100*time.Millisecond:
		return nil, fmt.Errorf("scheduler: lease TTL %s is too short; use scheduler.WithLeaseTTL with at least 100ms", cfg.leaseTTL)
	case cfg.codec == nil || cfg.topic == nil || cfg.location == nil:
		return nil, errors.New("scheduler: nil codec, topic function or location option")
	case cfg.instanceID == "":
		return nil, errors.New("scheduler: empty instance id; pass a non-empty name to scheduler.WithInstanceID")
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	t, err := newTables(cfg.table)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.meter, t.name.String())
	if err != nil {
		return nil, fmt.Errorf("scheduler: metrics: %w", err)
	}
	s := &Scheduler[TTx]{
		drv:    drv,
		sink:   sink,
		t:      t,
		cfg:    cfg,
		wakeCh: make(chan struct{}, 1),
		m:      m,
		jobs:   make(map[string]bool),
		create: msgtrace.NewCreator(msgtrace.Tracer(cfg.tracer, instrumentation), msgtrace.System,
			attribute.String("scheduler.table", t.name.String())),
	}
	s.elector = &leaseElector{st: drv, t: t.st, name: "cron", holder: cfg.instanceID, ttl: cfg.leaseTTL}
	return s, nil
}

// Table returns the validated name of the scheduled-messages table.
func (s *Scheduler[TTx]) Table() string { return s.t.name.String() }

// InstanceID returns the name of this replica in the lease and ticks tables.
func (s *Scheduler[TTx]) InstanceID() string { return s.cfg.instanceID }

// Schedule encodes msgs with the scheduler's envelope and stores them, due at
// at, in the caller's transaction tx: they exist only if tx commits. It
// returns their ids (the ce_id of each message, also the id for
// [Scheduler.Cancel] and [Scheduler.Reschedule]). A time in the past means
// "as soon as possible". Inside a handler (ctx from the handler) the
// messages are correlated with the message being handled.
//
// Each message gets a producer span "create <topic>" (OpenTelemetry
// messaging conventions, operation "create"), a child of the span in ctx,
// whose context is stored in the message's traceparent/tracestate metadata:
// when the message is handed off, its consumers continue the trace of the
// step that scheduled it.
func (s *Scheduler[TTx]) Schedule(ctx context.Context, tx TTx, at time.Time, msgs ...router.Message) ([]string, error) {
	ex, err := s.unwrap(tx)
	if err != nil {
		return nil, err
	}
	return s.ScheduleWith(ctx, ex, at, msgs...)
}

// ScheduleWith is [Scheduler.Schedule] through a store executor: a
// transaction from store.Store.Begin or Driver.UnwrapTx, or
// store.Store.Executor() to schedule on its own.
func (s *Scheduler[TTx]) ScheduleWith(ctx context.Context, ex store.Executor, at time.Time, msgs ...router.Message) ([]string, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	rows := make([]row, 0, len(msgs))
	for _, m := range msgs {
		if m == nil {
			return nil, errors.New("scheduler: Schedule of a nil message")
		}
		wm, err := router.NewMessage(ctx, m, router.EncodeOptions{Codec: s.cfg.codec, Source: s.cfg.source})
		if err != nil {
			return nil, fmt.Errorf("scheduler: encode %s: %w", m.MessageType(), err)
		}
		rows = append(rows, row{id: wm.UUID, topic: s.cfg.topic(m.MessageType()), msg: wm})
	}
	return s.insert(ctx, ex, at, rows)
}

// After is [Scheduler.Schedule] at time.Now().Add(d).
func (s *Scheduler[TTx]) After(ctx context.Context, tx TTx, d time.Duration, msgs ...router.Message) ([]string, error) {
	return s.Schedule(ctx, tx, time.Now().Add(d), msgs...)
}

// ScheduleMessages stores already-built Watermill messages for topic, due at
// at, in the caller's transaction tx, keeping their UUID, metadata and
// payload as they are. Each gets a new scheduler id (returned), so the same
// message may be scheduled more than once (redelivery does this). Each gets
// a "create" span as in [Scheduler.Schedule], a child of the span in ctx
// (the step that schedules it), else of the message's own span context; its
// context replaces the trace context of the stored metadata (the caller's
// message is left as it was).
func (s *Scheduler[TTx]) ScheduleMessages(ctx context.Context, tx TTx, at time.Time, topic string, msgs ...*message.Message) ([]string, error) {
	ex, err := s.unwrap(tx)
	if err != nil {
		return nil, err
	}
	return s.ScheduleMessagesWith(ctx, ex, at, topic, msgs...)
}

// ScheduleMessagesWith is [Scheduler.ScheduleMessages] through a store
// executor; it is what other components (a saga's timeouts) call, with the
// executor of their own transaction.
func (s *Scheduler[TTx]) ScheduleMessagesWith(ctx context.Context, ex store.Executor, at time.Time, topic string, msgs ...*message.Message) ([]string, error) {
	if topic == "" {
		return nil, errors.New("scheduler: ScheduleMessages with an empty topic")
	}
	rows := make([]row, 0, len(msgs))
	for _, m := range msgs {
		if m == nil {
			return nil, errors.New("scheduler: ScheduleMessages of a nil message")
		}
		if m.UUID == "" {
			return nil, errors.New("scheduler: ScheduleMessages of a message with an empty UUID; build it with message.NewMessage(watermill.NewUUID(), payload)")
		}
		rows = append(rows, row{id: router.NewID(), topic: topic, msg: m})
	}
	return s.insert(ctx, ex, at, rows)
}

type row struct {
	id, topic string
	msg       *message.Message
}

// unwrap returns the executor of the caller's transaction tx.
func (s *Scheduler[TTx]) unwrap(tx TTx) (store.Executor, error) {
	if isNil(tx) {
		return nil, errors.New("scheduler: nil transaction; pass the caller's transaction (or use the ...With method with the store's Executor() to schedule on its own)")
	}
	return s.drv.UnwrapTx(tx), nil
}

// isNil reports whether v is nil or a nil pointer or interface.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan:
		return rv.IsNil()
	}
	return false
}

func (s *Scheduler[TTx]) insert(ctx context.Context, ex store.Executor, at time.Time, rows []row) ([]string, error) {
	if isNil(ex) {
		return nil, errors.New("scheduler: nil executor; pass a transaction's executor or the store's Executor()")
	}
	if len(rows) == 0 {
		return nil, nil
	}
	if at.IsZero() {
		return nil, errors.New("scheduler: zero due time; pass the time the message is due")
	}
	out := make([]store.SchedulerRow, len(rows))
	ids := make([]string, len(rows))
	spans := make([]trace.Span, 0, len(rows))
	var err error
	defer func() { msgtrace.End(spans, err) }()
	due := attribute.String("hexeract.scheduler.due_at", at.UTC().Format(time.RFC3339Nano))
	for i, r := range rows {
		// The span context goes into a copy of the metadata.
		c := message.NewMessage(r.msg.UUID, nil)
		c.Metadata = make(message.Metadata, len(r.msg.Metadata)+2) // never nil: store {}, not null
		for k, v := range r.msg.Metadata {
			c.Metadata[k] = v
		}
		spans = append(spans, s.create.Create(msgtrace.CallerParent(ctx, r.msg), r.topic, c, due))
		md, merr := json.Marshal(c.Metadata)
		if merr != nil {
			err = fmt.Errorf("scheduler: metadata of message %s: %w", r.msg.UUID, merr)
			return nil, err
		}
		payload := r.msg.Payload
		if payload == nil {
			payload = []byte{}
		}
		ids[i] = r.id
		out[i] = store.SchedulerRow{ID: r.id, Topic: r.topic, UUID: r.msg.UUID, DueAt: at, Payload: payload, Metadata: md}
	}
	if err = ex.SchedulerInsert(ctx, s.t.st, out, s.notifyWithin()); err != nil {
		err = fmt.Errorf("scheduler: insert into %s: %w", s.t.name, err)
		return nil, err
	}
	return ids, nil
}

// notifyWithin is the horizon within which a newly scheduled message is
// announced (negative: never).
func (s *Scheduler[TTx]) notifyWithin() time.Duration {
	if !s.cfg.notify {
		return -1
	}
	return s.cfg.pollInterval
}

// Cancel removes a pending scheduled message. It returns [ErrNotFound] when
// there is none with this id (for example it is already handed off).
func (s *Scheduler[TTx]) Cancel(ctx context.Context, id string) error {
	return s.CancelWith(ctx, s.drv.Executor(), id)
}

// CancelTx is [Scheduler.Cancel] inside the caller's transaction. A message
// that the poller is handing off at that moment is locked: CancelTx waits
// for the hand-off to finish and then returns [ErrNotFound].
func (s *Scheduler[TTx]) CancelTx(ctx context.Context, tx TTx, id string) error {
	ex, err := s.unwrap(tx)
	if err != nil {
		return err
	}
	return s.CancelWith(ctx, ex, id)
}

// CancelWith is [Scheduler.Cancel] through a store executor, for example a
// saga cancelling its timeout in the transaction that saves its state.
func (s *Scheduler[TTx]) CancelWith(ctx context.Context, ex store.Executor, id string) error {
	if isNil(ex) {
		return errors.New("scheduler: nil executor")
	}
	found, err := ex.SchedulerCancel(ctx, s.t.st, id)
	if err != nil {
		return fmt.Errorf("scheduler: cancel %s: %w", id, err)
	}
	if !found {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return nil
}

// Reschedule moves a pending scheduled message to a new due time. It returns
// [ErrNotFound] when there is none with this id.
func (s *Scheduler[TTx]) Reschedule(ctx context.Context, id string, at time.Time) error {
	return s.RescheduleWith(ctx, s.drv.Executor(), id, at)
}

// RescheduleTx is [Scheduler.Reschedule] inside the caller's transaction.
func (s *Scheduler[TTx]) RescheduleTx(ctx context.Context, tx TTx, id string, at time.Time) error {
	ex, err := s.unwrap(tx)
	if err != nil {
		return err
	}
	return s.RescheduleWith(ctx, ex, id, at)
}

// RescheduleWith is [Scheduler.Reschedule] through a store executor.
func (s *Scheduler[TTx]) RescheduleWith(ctx context.Context, ex store.Executor, id string, at time.Time) error {
	if isNil(ex) {
		return errors.New("scheduler: nil executor")
	}
	if at.IsZero() {
		return errors.New("scheduler: zero due time")
	}
	found, err := ex.SchedulerReschedule(ctx, s.t.st, id, at, s.notifyWithin())
	if err != nil {
		return fmt.Errorf("scheduler: reschedule %s: %w", id, err)
	}
	if !found {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return nil
}

// Pending describes a scheduled message that is not yet due or not yet
// handed off.
type Pending struct {
	ID        string
	Topic     string
	Type      string // ce_type of the message ("" for raw messages without it)
	DueAt     time.Time
	CreatedAt time.Time
	// Refusals counts the hand-offs the sink refused (see [Scheduler.Run]);
	// LastError is the last refusal's error.
	Refusals  int
	LastError string
	// Metadata is the message's stored metadata; only [Scheduler.Get]
	// fills it (List leaves it nil).
	Metadata message.Metadata
}

func pendingOf(p store.SchedulerPending) Pending {
	return Pending{ID: p.ID, Topic: p.Topic, Type: p.Type, DueAt: p.DueAt, CreatedAt: p.CreatedAt, Refusals: p.Refusals, LastError: p.LastError}
}

// Get returns the pending scheduled message id, with its metadata (for
// example router.KeySagaName on a saga's timeout). It returns [ErrNotFound]
// when there is none with this id.
func (s *Scheduler[TTx]) Get(ctx context.Context, id string) (Pending, error) {
	sp, found, err := s.drv.Executor().SchedulerGet(ctx, s.t.st, id)
	if err != nil {
		return Pending{}, fmt.Errorf("scheduler: get %s: %w", id, err)
	}
	if !found {
		return Pending{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	p := pendingOf(sp)
	if p.Metadata, err = decodeMetadata(sp.Metadata); err != nil {
		return p, fmt.Errorf("scheduler: get %s: metadata: %w", id, err)
	}
	return p, nil
}

// List returns up to limit pending messages in due order, only those for
// topic when topic is not empty.
func (s *Scheduler[TTx]) List(ctx context.Context, topic string, limit int) ([]Pending, error) {
	if limit <= 0 {
		limit = 100
	}
	sps, err := s.drv.Executor().SchedulerList(ctx, s.t.st, topic, limit)
	if err != nil {
		return nil, fmt.Errorf("scheduler: list %s: %w", s.t.name, err)
	}
	out := make([]Pending, len(sps))
	for i, sp := range sps {
		out[i] = pendingOf(sp)
	}
	return out, nil
}

// Count returns the number of pending scheduled messages.
func (s *Scheduler[TTx]) Count(ctx context.Context) (int64, error) { return s.CountTopic(ctx, "") }

// CountTopic returns the number of pending scheduled messages for topic
// (every topic when topic is empty), the total of what List(ctx, topic, 0)
// pages through.
func (s *Scheduler[TTx]) CountTopic(ctx context.Context, topic string) (int64, error) {
	return s.drv.Executor().SchedulerCount(ctx, s.t.st, topic)
}

// TxSink returns a [Sink] that hands due messages to publish inside the
// hand-off transaction, as the driver's own transaction type: a sink
// writing into tables of the application (or an outbox taking a typed
// transaction) in the transaction that deletes the scheduled rows.
func TxSink[TTx any](drv store.Driver[TTx], publish func(ctx context.Context, tx TTx, topic string, msgs ...*message.Message) error) Sink {
	return SinkFunc(func(ctx context.Context, ex store.Executor, topic string, msgs ...*message.Message) error {
		tx, ok := drv.TxOf(ex)
		if !ok {
			return fmt.Errorf("scheduler: TxSink was given an executor of another driver or outside a transaction (%T)", ex)
		}
		return publish(ctx, tx, topic, msgs...)
	})
}
