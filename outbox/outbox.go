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
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/hexeract/hexeract/internal/msgtrace"
	"github.com/hexeract/hexeract/router"
)

// Executor is what [Outbox.Publish] writes through. pgx.Tx, *pgxpool.Pool,
// *pgxpool.Conn, *pgx.Conn and pgxpool.Tx all satisfy it. Pass the
// transaction that writes the business state: the messages are committed,
// or rolled back, with it.
type Executor interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error)
}

// Outbox writes messages into an outbox table inside the caller's
// transaction. It is safe for concurrent use. A [Relay] delivers the rows.
type Outbox struct {
	pool    *pgxpool.Pool
	t       tables
	codec   router.Codec
	source  string
	topic   router.TopicFunc
	topics  router.TopicNaming
	notify  notifyMode
	keyLock bool
	n       *notifier
	create  *msgtrace.Creator

	insertSQL string // multi-row insert, with or without pg_notify
	insertOne string // the same for one message
	notifySQL string
	lockSQL   string

	// relays are the running relays built with [Outbox.NewRelay]: the ones
	// [Outbox.Signal] wakes in-process. They are kept on the Outbox the
	// caller holds, not in a package-level registry.
	relaysMu sync.Mutex
	relays   map[*Relay]struct{}
}

// copyThreshold is the batch size from which Publish writes with COPY
// instead of a multi-row INSERT.
const copyThreshold = 512

// New returns an Outbox on the table set by [WithTable] (default
// [DefaultTable]). It validates the options, and the table name, before
// any SQL is built; it does not touch the database. Create the tables with
// [Outbox.Migrate] (or "hexeract migrate up").
func New(pool *pgxpool.Pool, opts ...Option) (*Outbox, error) {
	cfg := outboxConfig{table: DefaultTable, notify: notifyAfterCommit, keyLock: true}
	for _, opt := range opts {
		if opt != nil {
			opt.applyOutbox(&cfg)
		}
	}
	t, err := resolveTables(cfg.table)
	if err != nil {
		return nil, err
	}
	if pool == nil {
		return nil, errors.New("outbox: New needs a *pgxpool.Pool (it is used by Migrate and the admin methods)")
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
	o := &Outbox{
		pool: pool, t: t, codec: cfg.codec, source: cfg.source, topic: cfg.topic, topics: cfg.topics,
		notify: cfg.notify, keyLock: cfg.keyLock,
		create: msgtrace.NewCreator(msgtrace.Tracer(cfg.tracer, instrumentation), msgtrace.System,
			attribute.String("outbox.table", t.name.String())),
	}
	insert := `INSERT INTO ` + t.table + ` (id, topic, ordering_key, metadata, payload)
SELECT u.i, u.t, NULLIF(u.k, ''), u.m::jsonb, u.p
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[]) WITH ORDINALITY AS u(i, t, k, m, p, n)
ORDER BY u.n`
	one := `INSERT INTO ` + t.table + ` (id, topic, ordering_key, metadata, payload) VALUES ($1, $2, NULLIF($3, ''), $4::jsonb, $5)`
	if o.notify == notifyInTx {
		o.insertSQL = `WITH ins AS (` + insert + `) SELECT pg_notify('` + t.channel + `', '')`
		o.insertOne = `WITH ins AS (` + one + `) SELECT pg_notify('` + t.channel + `', '')`
	} else {
		o.insertSQL, o.insertOne = insert, one
	}
	if o.notify != notifyOff {
		o.n = &notifier{src: pool, sql: `SELECT pg_notify('` + t.channel + `', '')`}
	}
	o.notifySQL = `SELECT pg_notify('` + t.channel + `', '')`
	o.lockSQL = `SELECT pg_advisory_xact_lock($1::integer, s.h) FROM (SELECT DISTINCT hashtext(k) AS h FROM unnest($2::text[]) AS k WHERE k <> '' ORDER BY 1) AS s`
	return o, nil
}

// Table returns the outbox table name as configured ("schema.table" or "table").
func (o *Outbox) Table() string { return o.t.name.String() }

// Channel returns the PostgreSQL notification channel on which
// [Outbox.Publish] announces new rows and relays listen.
func (o *Outbox) Channel() string { return o.t.channel }

// Topics returns the outbox's topic naming (see [WithTopicNaming]); a
// scheduler whose sink is this outbox names topics with it.
func (o *Outbox) Topics() router.TopicNaming { return o.topics }

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
func (o *Outbox) Publish(ctx context.Context, tx Executor, msgs ...router.Message) ([]string, error) {
	if tx == nil {
		return nil, errors.New("outbox: Publish needs a transaction (pgx.Tx) to write through")
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
	if err = o.write(ctx, tx, b); err != nil {
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
func (o *Outbox) PublishMessages(ctx context.Context, tx Executor, topic string, msgs ...*message.Message) (err error) {
	if tx == nil {
		return errors.New("outbox: PublishMessages needs a transaction (pgx.Tx) to write through")
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
	return o.write(ctx, tx, b)
}

// batch holds the column arrays of one Publish call.
type batch struct {
	ids, topics, keys, metadata []string
	payloads                    [][]byte
	keyed                       bool
}

func newBatch(n int) *batch {
	return &batch{
		ids: make([]string, 0, n), topics: make([]string, 0, n), keys: make([]string, 0, n),
		metadata: make([]string, 0, n), payloads: make([][]byte, 0, n),
	}
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
		b.keyed = true
	}
	payload := []byte(m.Payload)
	if payload == nil {
		payload = []byte{}
	}
	b.ids = append(b.ids, m.UUID)
	b.topics = append(b.topics, topic)
	b.keys = append(b.keys, key)
	b.metadata = append(b.metadata, string(js))
	b.payloads = append(b.payloads, payload)
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

func (o *Outbox) write(ctx context.Context, tx Executor, b *batch) error {
	if len(b.ids) == 0 {
		return nil
	}
	if b.keyed && o.keyLock {
		if _, err := tx.Exec(ctx, o.lockSQL, o.t.lockClass, b.keys); err != nil {
			return fmt.Errorf("outbox: lock ordering keys: %w", err)
		}
	}
	if len(b.ids) >= copyThreshold {
		rows := make([][]any, len(b.ids))
		for i := range b.ids {
			var key any
			if b.keys[i] != "" {
				key = b.keys[i]
			}
			rows[i] = []any{b.ids[i], b.topics[i], key, b.metadata[i], b.payloads[i]}
		}
		ident := pgx.Identifier{o.t.name.Table}
		if o.t.name.Schema != "" {
			ident = pgx.Identifier{o.t.name.Schema, o.t.name.Table}
		}
		if _, err := tx.CopyFrom(ctx, ident, []string{"id", "topic", "ordering_key", "metadata", "payload"}, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("outbox: write %d messages to %s: %w", len(b.ids), o.t.name, err)
		}
		if o.notify == notifyInTx {
			if _, err := tx.Exec(ctx, o.notifySQL); err != nil {
				return fmt.Errorf("outbox: notify: %w", err)
			}
		}
		return nil
	}
	var err error
	if len(b.ids) == 1 {
		_, err = tx.Exec(ctx, o.insertOne, b.ids[0], b.topics[0], b.keys[0], b.metadata[0], b.payloads[0])
	} else {
		_, err = tx.Exec(ctx, o.insertSQL, b.ids, b.topics, b.keys, b.metadata, b.payloads)
	}
	if err != nil {
		return fmt.Errorf("outbox: write %d messages to %s: %w", len(b.ids), o.t.name, err)
	}
	return nil
}

// InTx runs fn in a transaction on the outbox's pool, commits it when fn
// returns nil, and then calls [Outbox.Signal]. Write the business state and
// call [Outbox.Publish] with the tx inside fn.
func (o *Outbox) InTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	if err := pgx.BeginFunc(ctx, o.pool, fn); err != nil {
		return err
	}
	o.Signal()
	return nil
}

// Signal announces that a transaction which published has committed. It
// wakes the running relays built from this Outbox ([Outbox.NewRelay]) at
// once. When none of them runs, it sends (unless [WithoutNotify]) a
// PostgreSQL notification, on its own connection and outside any producer
// transaction, that wakes the relays of other processes; notifications
// from many Signal calls in a burst are coalesced. Call it after Commit; [Outbox.InTx] does. Without
// it, relays find the rows by polling ([WithPollInterval]), or through the
// in-transaction notification of [WithNotifyInTx].
func (o *Outbox) Signal() {
	if !o.wakeRelays() && o.n != nil {
		o.n.kick()
	}
}

// Close releases the connection [Outbox.Signal] sends notifications on
// (opened on first use and closed after a minute without use anyway). The
// Outbox stays usable: a later Signal opens it again.
func (o *Outbox) Close() {
	if o.n != nil {
		o.n.close()
	}
}

// notifier sends pg_notify on its own connection (synchronous_commit off,
// so the notifying transaction does not wait for a WAL flush), with at most
// one send in flight: calls during a send cause exactly one more send.
type notifier struct {
	src     *pgxpool.Pool
	sql     string
	mu      sync.Mutex
	db      *pgxpool.Pool
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

func (n *notifier) pool() (*pgxpool.Pool, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.db != nil {
		return n.db, nil
	}
	cfg := n.src.Config()
	cfg.MaxConns, cfg.MinConns = 1, 0
	cfg.MaxConnIdleTime = time.Minute
	cfg.HealthCheckPeriod = 30 * time.Second
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	cfg.ConnConfig.RuntimeParams["application_name"] = "hexeract-outbox-notify"
	db, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	n.db = db
	return db, nil
}

func (n *notifier) close() {
	n.mu.Lock()
	db := n.db
	n.db = nil
	n.mu.Unlock()
	if db != nil {
		db.Close()
	}
}

func (n *notifier) loop() {
	for {
		// The relays poll as well: a failed notification only delays delivery.
		if db, err := n.pool(); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, _ = db.Exec(ctx, n.sql)
			cancel()
		}
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
func (o *Outbox) NewRelay(pub message.Publisher, opts ...RelayOption) (*Relay, error) {
	cfg := relayConfig{table: o.t.name.String()}
	for _, opt := range opts {
		if opt != nil {
			opt.applyRelay(&cfg)
		}
	}
	if t, err := resolveTables(cfg.table); err != nil || t.name != o.t.name {
		return nil, fmt.Errorf("outbox: Outbox.NewRelay on table %s was given WithTable(%q); leave the option out (the relay uses the Outbox's table) or use outbox.NewRelay", o.t.name, cfg.table)
	}
	r, err := NewRelay(o.pool, pub, append([]RelayOption{WithTable(o.t.name.String())}, opts...)...)
	if err != nil {
		return nil, err
	}
	r.ob = o
	return r, nil
}

// addRelay makes Signal wake r until the returned function is called.
func (o *Outbox) addRelay(r *Relay) (remove func()) {
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
func (o *Outbox) wakeRelays() bool {
	o.relaysMu.Lock()
	defer o.relaysMu.Unlock()
	for r := range o.relays {
		r.wake()
	}
	return len(o.relays) > 0
}
