package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/hexeract/hexeract/internal/msgtrace"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/store"
)

// Outbox writes messages into an outbox table inside the caller's
// transaction, of type TTx: pgx.Tx on PostgreSQL ([postgres.New]),
// *sql.Tx on MySQL/MariaDB and SQLite. It is safe for concurrent use. A
// [Relay] delivers the rows.
//
// [postgres.New]: https://pkg.go.dev/github.com/hexeract/hexeract/store/postgres#New
type Outbox[TTx any] struct {
	drv     store.Driver[TTx]
	t       tables
	codec   router.Codec
	source  string
	topic   router.TopicFunc
	topics  router.TopicNaming
	notify  notifyMode
	keyLock bool
	n       *notifier
	create  *msgtrace.Creator

	// relays are the running relays built with [Outbox.NewRelay]: the ones
	// [Outbox.Signal] wakes in-process. They are kept on the Outbox the
	// caller holds, not in a package-level registry.
	relaysMu sync.Mutex
	relays   map[*Relay]struct{}
}

// New returns an Outbox on drv and the table set by [WithTable] (default
// [DefaultTable]). It validates the options, and the table name for drv's
// database, before any SQL is built; it does not touch the database.
// Create the tables with [Outbox.Migrate] (or "hexeract migrate up").
// Code holding an untyped store.Store passes store.Untyped(st).
func New[TTx any](drv store.Driver[TTx], opts ...Option) (*Outbox[TTx], error) {
	cfg := outboxConfig{table: DefaultTable, notify: notifyAfterCommit, keyLock: true}
	for _, opt := range opts {
		if opt != nil {
			opt.applyOutbox(&cfg)
		}
	}
	if drv == nil {
		return nil, errors.New("outbox: New needs a store driver (postgres.New(pool), sqlite.Open, mysql.Open, or store.Untyped(st))")
	}
	t, err := resolveTablesFor(drv.Dialect(), cfg.table)
	if err != nil {
		return nil, err
	}
	if cfg.codec == nil {
		cfg.codec = router.JSON{}
	}
	if cfg.source == "" {
		cfg.source = router.DefaultSource
	}
	if cfg.topics == nil {
		cfg.topics = router.FuncTopics{TopicOf: cfg.topic}
	}
	if cfg.topic == nil {
		cfg.topic = router.DefaultTopic
	}
	o := &Outbox[TTx]{
		drv: drv, t: t, codec: cfg.codec, source: cfg.source, topic: cfg.topic, topics: cfg.topics,
		notify: cfg.notify, keyLock: cfg.keyLock,
		create: msgtrace.NewCreator(msgtrace.Tracer(cfg.tracer, instrumentation), msgtrace.System,
			attribute.String("outbox.table", t.name.String())),
	}
	if o.notify != notifyOff {
		o.n = &notifier{send: func(ctx context.Context) error { return drv.Executor().OutboxNotify(ctx, t.st) }}
	}
	return o, nil
}

// Table returns the outbox table name as configured ("schema.table" or "table").
func (o *Outbox[TTx]) Table() string { return o.t.name.String() }

// Channel returns the PostgreSQL notification channel on which
// [Outbox.Publish] announces new rows and relays listen.
func (o *Outbox[TTx]) Channel() string { return o.t.channel }

// Topics returns the outbox's topic naming (see [WithTopicNaming]); a
// scheduler whose sink is this outbox names topics with it.
func (o *Outbox[TTx]) Topics() router.TopicNaming { return o.topics }

// Publish encodes msgs with the Hexeract envelope (see router.NewMessage:
// a new UUIDv7 id, ce_type, ce_source, correlation and causation taken from
// ctx) and writes them into the outbox through tx, in one round trip. It
// returns the message ids in the order of msgs.
//
// Each message gets a producer span "create <topic>" (OpenTelemetry
// messaging conventions, operation "create"), a child of the span in ctx;
// the row carries that span's context as W3C traceparent/tracestate
// metadata, so the relay's publish span links to it and consumers continue
// the trace. The span ends when Publish returns, with an error status when
// the write failed.
// The messages are delivered only if tx commits. A message implementing
// router.Keyed gets its ordering key: messages with the same key are
// delivered in commit order.
func (o *Outbox[TTx]) Publish(ctx context.Context, tx TTx, msgs ...router.Message) ([]string, error) {
	return o.PublishWith(ctx, o.drv.UnwrapTx(tx), msgs...)
}

// PublishWith is [Outbox.Publish] through an executor of the outbox's
// store (what the driver's UnwrapTx or Begin returns).
func (o *Outbox[TTx]) PublishWith(ctx context.Context, ex store.Executor, msgs ...router.Message) ([]string, error) {
	if ex == nil {
		return nil, errors.New("outbox: Publish needs a transaction to write through")
	}
	b := newBatch(len(msgs))
	ids := make([]string, 0, len(msgs))
	spans := make([]trace.Span, 0, len(msgs))
	var err error
	defer func() { msgtrace.End(spans, err) }()
	for i, m := range msgs {
		if m == nil {
			return nil, fmt.Errorf("outbox: Publish: message %d is nil", i)
		}
		wm, eerr := router.NewMessage(ctx, m, router.EncodeOptions{Codec: o.codec, Source: o.source})
		if eerr != nil {
			err = fmt.Errorf("outbox: encode %s: %w", m.MessageType(), eerr)
			return nil, err
		}
		topic := o.topic(m.MessageType())
		if topic == "" {
			err = fmt.Errorf("outbox: the topic function returned an empty topic for %s", m.MessageType())
			return nil, err
		}
		spans = append(spans, o.create.Create(ctx, topic, wm))
		if err = b.add(topic, wm); err != nil {
			return nil, err
		}
		ids = append(ids, wm.UUID)
	}
	if err = o.write(ctx, ex, b); err != nil {
		return nil, err
	}
	return ids, nil
}

// PublishMessages writes pre-built Watermill messages for topic into the
// outbox through tx, in one round trip. Each message keeps its UUID (the
// row id) and metadata; its ordering key is the ce_partitionkey metadata
// value, if any. Use it to hand over messages built elsewhere (scheduler,
// sagas, forwarding).
//
// Each message gets a producer span "create <topic>", as in
// [Outbox.Publish], whose context replaces the trace context of the
// metadata. A message brings its own parent: the span in msg.Context(),
// else the span context of its traceparent metadata (a scheduled message
// handed off by the scheduler); the span in ctx is the parent of a message
// that has neither.
func (o *Outbox[TTx]) PublishMessages(ctx context.Context, tx TTx, topic string, msgs ...*message.Message) error {
	return o.PublishMessagesWith(ctx, o.drv.UnwrapTx(tx), topic, msgs...)
}

// PublishMessagesWith is [Outbox.PublishMessages] through an executor of
// the outbox's store (what the driver's UnwrapTx or Begin returns). The
// scheduler and the saga runtime hand messages over with it.
func (o *Outbox[TTx]) PublishMessagesWith(ctx context.Context, ex store.Executor, topic string, msgs ...*message.Message) (err error) {
	if ex == nil {
		return errors.New("outbox: PublishMessages needs a transaction to write through")
	}
	if topic == "" {
		return errors.New("outbox: PublishMessages: empty topic")
	}
	b := newBatch(len(msgs))
	spans := make([]trace.Span, 0, len(msgs))
	defer func() { msgtrace.End(spans, err) }()
	for i, m := range msgs {
		if m == nil {
			return fmt.Errorf("outbox: PublishMessages: message %d is nil", i)
		}
		if m.UUID == "" {
			return fmt.Errorf("outbox: PublishMessages: message %d has an empty UUID", i)
		}
		// The span context goes into a copy of the metadata: the caller's
		// message is left as it was.
		c := message.NewMessage(m.UUID, m.Payload)
		c.Metadata = cloneMetadata(m.Metadata)
		c.SetContext(m.Context())
		spans = append(spans, o.create.Create(msgtrace.MessageParent(ctx, m), topic, c))
		if err := b.add(topic, c); err != nil {
			return err
		}
	}
	return o.write(ctx, ex, b)
}

// batch holds the column arrays of one Publish call.
type batch struct{ store.OutboxBatch }

func newBatch(n int) *batch {
	return &batch{store.OutboxBatch{
		IDs: make([]string, 0, n), Topics: make([]string, 0, n), Keys: make([]string, 0, n),
		Metadata: make([]string, 0, n), Payloads: make([][]byte, 0, n),
	}}
}

func (b *batch) add(topic string, m *message.Message) error {
	md := m.Metadata
	if md == nil {
		md = message.Metadata{}
	}
	if err := checkText(m.UUID, topic, md); err != nil {
		return err
	}
	js, err := json.Marshal(map[string]string(md))
	if err != nil {
		return fmt.Errorf("outbox: metadata of message %s: %w", m.UUID, err)
	}
	key := md.Get(router.KeyPartitionKey)
	if key != "" {
		b.Keyed = true
	}
	payload := []byte(m.Payload)
	if payload == nil {
		payload = []byte{}
	}
	b.IDs = append(b.IDs, m.UUID)
	b.Topics = append(b.Topics, topic)
	b.Keys = append(b.Keys, key)
	b.Metadata = append(b.Metadata, string(js))
	b.Payloads = append(b.Payloads, payload)
	return nil
}

// checkText refuses, before any SQL runs (so the caller's transaction is
// not aborted), text the outbox columns cannot store as given: a NUL byte
// (PostgreSQL text and jsonb reject it) or invalid UTF-8 (rejected by
// text columns, and silently replaced by encoding/json in the metadata).
func checkText(id, topic string, md message.Metadata) error {
	bad := func(s string) bool { return strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) }
	switch {
	case bad(id):
		return fmt.Errorf("outbox: message id %q holds a NUL byte or invalid UTF-8, which PostgreSQL cannot store; use a text id", id)
	case bad(topic):
		return fmt.Errorf("outbox: topic %q of message %s holds a NUL byte or invalid UTF-8, which PostgreSQL cannot store", topic, id)
	}
	for k, v := range md {
		if bad(k) || bad(v) {
			return fmt.Errorf("outbox: metadata %q of message %s holds a NUL byte or invalid UTF-8, which PostgreSQL jsonb cannot store; encode binary values (base64, say) before putting them in metadata", k, id)
		}
	}
	return nil
}

func cloneMetadata(md message.Metadata) message.Metadata {
	c := make(message.Metadata, len(md)+2)
	for k, v := range md {
		c[k] = v
	}
	return c
}

func (o *Outbox[TTx]) write(ctx context.Context, ex store.Executor, b *batch) error {
	if b.Len() == 0 {
		return nil
	}
	err := ex.OutboxInsert(ctx, o.t.st, &b.OutboxBatch, store.OutboxWriteOptions{KeyLock: o.keyLock, NotifyInTx: o.notify == notifyInTx})
	if err != nil {
		return fmt.Errorf("outbox: write %d messages to %s: %w", b.Len(), o.t.name, err)
	}
	return nil
}

// InTx runs fn in a transaction of the outbox's store, commits it when fn
// returns nil, and then calls [Outbox.Signal]. Write the business state and
// call [Outbox.Publish] with the tx inside fn.
func (o *Outbox[TTx]) InTx(ctx context.Context, fn func(ctx context.Context, tx TTx) error) error {
	if err := o.drv.InTx(ctx, fn); err != nil {
		return err
	}
	o.Signal()
	return nil
}

// Signal announces that a transaction which published has committed. It
// wakes the running relays built from this Outbox ([Outbox.NewRelay]) at
// once. When none of them runs, it sends (unless [WithoutNotify]) a
// notification through the store (PostgreSQL NOTIFY, outside any producer
// transaction, which wakes the relays of other processes; the in-process
// notifier of the driver value on MySQL and SQLite); notifications from
// many Signal calls in a burst are coalesced. Call it after Commit;
// [Outbox.InTx] does. Without it, relays find the rows by polling
// ([WithPollInterval]), or through the in-transaction notification of
// [WithNotifyInTx].
func (o *Outbox[TTx]) Signal() {
	if !o.wakeRelays() && o.n != nil {
		o.n.kick()
	}
}

// Close is kept for compatibility: notifications now go through the
// store's pool, so there is nothing to release.
func (o *Outbox[TTx]) Close() {}

// notifier sends notifications with at most one send in flight: calls
// during a send cause exactly one more send.
type notifier struct {
	send    func(ctx context.Context) error
	mu      sync.Mutex
	running bool
	again   bool
}

func (n *notifier) kick() {
	n.mu.Lock()
	if n.running {
		n.again = true
		n.mu.Unlock()
		return
	}
	n.running = true
	n.mu.Unlock()
	go n.loop()
}

func (n *notifier) loop() {
	for {
		// The relays poll as well: a failed notification only delays delivery.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = n.send(ctx)
		cancel()
		n.mu.Lock()
		if !n.again {
			n.running = false
			n.mu.Unlock()
			return
		}
		n.again = false
		n.mu.Unlock()
	}
}

// NewRelay returns a relay (see the package function [NewRelay]) on the
// Outbox's pool and table that [Outbox.Signal] wakes in-process while it
// runs, instead of through a PostgreSQL notification. A [WithTable] option
// naming another table is an error.
func (o *Outbox[TTx]) NewRelay(pub message.Publisher, opts ...RelayOption) (*Relay, error) {
	cfg := relayConfig{table: o.t.name.String()}
	for _, opt := range opts {
		if opt != nil {
			opt.applyRelay(&cfg)
		}
	}
	if t, err := resolveTablesFor(o.drv.Dialect(), cfg.table); err != nil || t.name != o.t.name {
		return nil, fmt.Errorf("outbox: Outbox.NewRelay on table %s was given WithTable(%q); leave the option out (the relay uses the Outbox's table) or use outbox.NewRelay", o.t.name, cfg.table)
	}
	r, err := NewRelay(o.drv, pub, append([]RelayOption{WithTable(o.t.name.String())}, opts...)...)
	if err != nil {
		return nil, err
	}
	r.attach = o.addRelay
	return r, nil
}

// addRelay makes Signal wake r until the returned function is called.
func (o *Outbox[TTx]) addRelay(r *Relay) (remove func()) {
	o.relaysMu.Lock()
	if o.relays == nil {
		o.relays = map[*Relay]struct{}{}
	}
	o.relays[r] = struct{}{}
	o.relaysMu.Unlock()
	return func() {
		o.relaysMu.Lock()
		delete(o.relays, r)
		o.relaysMu.Unlock()
	}
}

// wakeRelays wakes the running relays of o and reports whether there were any.
func (o *Outbox[TTx]) wakeRelays() bool {
	o.relaysMu.Lock()
	defer o.relaysMu.Unlock()
	for r := range o.relays {
		r.wake()
	}
	return len(o.relays) > 0
}
