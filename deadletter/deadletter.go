// Package deadletter is the dead-letter store: dead letters kept in a table
// of the App's database (PostgreSQL, MySQL/MariaDB or SQLite, through
// package store), and the operations an on-call operator runs on them. The
// CLI (hexeract dlq stored ...) and an operations console are built on this
// API.
//
// The dead-letter middleware writes a failed message to the table through
// [Store.Write] (set middleware.DeadLetterOptions.Store) and acknowledges
// the broker's message only after the write committed.
//
// Reads ([Store.List], [Store.Counts], [Store.Groups], [Store.Show],
// [Store.Audit]) change nothing. Mutations ([Store.Retry], [Store.Delete],
// [Store.Edit]) take a [MutateOptions] with DryRun (report what would be
// done, change nothing) and write one audit row each (who, what, how many,
// when). A retry deletes the dead row and inserts the message into the
// outbox in one transaction, so a message is never lost nor doubled; it
// processes the dead letters selected when it starts, once: a retried
// message that fails again becomes a new dead letter of the same message id
// (its retry count one higher), which the running retry does not touch.
package deadletter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/internal/sqlident"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/store"
)

// DefaultTable is the dead-letter table's default name; its audit table is
// the name with "_audit" appended.
const DefaultTable = "hexeract_dead_letters"

// Outbox writes messages into the outbox inside the caller's transaction
// ex; *outbox.Outbox[TTx] is one. An Outbox that also has a Signal()
// method is signalled after each committed retry transaction, so the
// relays of this process publish at once.
type Outbox interface {
	PublishMessagesWith(ctx context.Context, ex store.Executor, topic string, msgs ...*message.Message) error
}

// Store is the dead-letter store on one database. It is safe for
// concurrent use. Build it with New.
type Store struct {
	st  store.Store
	t   store.DeadLetterTable
	ob  Outbox
	log *slog.Logger
	now func() time.Time
}

var _ middleware.DeadLetterStore = (*Store)(nil)

type config struct {
	table string
	ob    Outbox
	log   *slog.Logger
}

// Option configures a Store.
type Option func(*config)

// WithTable sets the dead-letter table's name (schema.table on PostgreSQL,
// database.table on MySQL, table alone on SQLite). Default: DefaultTable.
func WithTable(name string) Option { return func(c *config) { c.table = name } }

// WithOutbox sets the outbox that retries write messages into. Without it
// Retry and Edit with Retry fail with ErrNoOutbox.
func WithOutbox(ob Outbox) Option { return func(c *config) { c.ob = ob } }

// WithLogger sets the logger. Default: slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// ErrNoOutbox is returned by a retry on a Store built without WithOutbox.
var ErrNoOutbox = errors.New("deadletter: no outbox to retry into: build the store with deadletter.WithOutbox")

// ErrNotFound is returned for a dead-letter id that is not in the table.
var ErrNotFound = errors.New("deadletter: no such dead letter")

// New returns a Store on st. It does not touch the database: call Migrate
// (or hexeract migrate) to create the tables.
func New(st store.Store, opts ...Option) (*Store, error) {
	if st == nil {
		return nil, errors.New("deadletter: New needs a store")
	}
	c := config{table: DefaultTable}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	t, err := CheckTable(st.Dialect(), c.table)
	if err != nil {
		return nil, err
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	return &Store{st: st, t: t, ob: c.ob, log: c.log, now: time.Now}, nil
}

// CheckTable validates a dead-letter table name for dialect and returns it
// split into schema and table.
func CheckTable(dialect store.Dialect, name string) (store.DeadLetterTable, error) {
	n, err := sqlident.Parse(name)
	if err != nil {
		return store.DeadLetterTable{}, fmt.Errorf("deadletter: table: %w; pass a valid name to WithTable", err)
	}
	if len(n.Table) > 50 {
		return store.DeadLetterTable{}, fmt.Errorf("deadletter: table %q: at most 50 bytes (its index and audit tables add a suffix); pass a shorter name to WithTable", name)
	}
	if dialect == store.SQLite && n.Schema != "" {
		return store.DeadLetterTable{}, fmt.Errorf("deadletter: table %q: SQLite has no schemas; pass the table alone to WithTable", name)
	}
	return store.DeadLetterTable{Schema: n.Schema, Table: n.Table}, nil
}

// Table returns the table's name.
func (s *Store) Table() string { return s.t.Name() }

func (s *Store) migrations() ([]store.Migration, error) {
	return s.st.Executor().DeadLetterMigrations(s.t)
}

// Migrate creates or upgrades the dead-letter and audit tables.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := s.migrations()
	if err != nil {
		return err
	}
	_, err = s.st.Migrate(ctx, s.t.Component(), ms)
	return err
}

// SchemaStatus reports the state of each migration of the tables, changing
// nothing.
func (s *Store) SchemaStatus(ctx context.Context) ([]store.MigrationStatus, error) {
	ms, err := s.migrations()
	if err != nil {
		return nil, err
	}
	return s.st.MigrationStatus(ctx, s.t.Component(), ms)
}

// Write stores a dead letter (the middleware calls it). A copy of a dead
// letter already stored (same message id, handler and group: the broker
// redelivered a message whose acknowledgement was lost) overwrites it.
func (s *Store) Write(ctx context.Context, rec middleware.DeadLetterRecord) error {
	_, err := s.WriteWith(ctx, s.st.Executor(), rec)
	return err
}

// WriteWith stores a dead letter through ex (a transaction of the caller's)
// and returns its id.
func (s *Store) WriteWith(ctx context.Context, ex store.Executor, rec middleware.DeadLetterRecord) (int64, error) {
	if rec.Message == nil {
		return 0, errors.New("deadletter: Write without a message")
	}
	row, err := s.toRow(rec)
	if err != nil {
		return 0, err
	}
	id, err := ex.DeadLetterInsert(ctx, s.t, row)
	if err != nil {
		return 0, fmt.Errorf("deadletter: write dead letter of %s to %s: %w", rec.Message.UUID, s.t.Name(), err)
	}
	return id, nil
}

func (s *Store) toRow(rec middleware.DeadLetterRecord) (*store.DeadLetterRow, error) {
	md := message.Metadata{}
	for k, v := range rec.Message.Metadata {
		if !middleware.IsFaultKey(k) {
			md[k] = v
		}
	}
	mdJSON, err := json.Marshal(md)
	if err != nil {
		return nil, err
	}
	f := rec.Fault
	faultJSON, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	retries, _ := strconv.Atoi(md.Get(router.KeyDeadLetterRetries))
	now := s.now().UTC().Truncate(time.Microsecond)
	return &store.DeadLetterRow{
		MessageID:     rec.Message.UUID,
		Payload:       rec.Message.Payload,
		Metadata:      string(mdJSON),
		FaultType:     f.Type,
		FaultError:    f.Error,
		Fault:         string(faultJSON),
		Topic:         f.Topic,
		Handler:       f.Handler,
		Group:         rec.Group,
		Attempts:      f.Attempts,
		Retries:       retries,
		FirstFailedAt: orNow(f.FirstFailure, now),
		LastFailedAt:  orNow(f.LastFailure, now),
		DeadAt:        now,
	}, nil
}

func orNow(t, now time.Time) time.Time {
	if t.IsZero() {
		return now
	}
	return t
}

// DeadLetter is one stored dead letter.
type DeadLetter struct {
	// ID identifies the row; ids increase with insertion.
	ID int64 `json:"id"`
	// Message is the failed message: UUID, payload and metadata.
	Message *message.Message `json:"-"`
	// Fault describes the failure.
	Fault middleware.Fault `json:"fault"`
	// Topic is the topic the message was consumed from, where a retry
	// publishes it again.
	Topic   string `json:"topic"`
	Handler string `json:"handler"`
	Group   string `json:"group,omitempty"`
	// Attempts is the number of handler calls of the last failure.
	Attempts int `json:"attempts"`
	// Retries is how many times an operator retried this message from the
	// store before it failed this time.
	Retries       int       `json:"retries"`
	FirstFailedAt time.Time `json:"first_failed_at"`
	LastFailedAt  time.Time `json:"last_failed_at"`
	DeadAt        time.Time `json:"dead_at"`
}

func fromRow(r *store.DeadLetterRow) (*DeadLetter, error) {
	msg := message.NewMessage(r.MessageID, r.Payload)
	if r.Metadata != "" {
		if err := json.Unmarshal([]byte(r.Metadata), &msg.Metadata); err != nil {
			return nil, fmt.Errorf("deadletter: dead letter %d: metadata: %w", r.ID, err)
		}
		if msg.Metadata == nil {
			msg.Metadata = message.Metadata{}
		}
	}
	d := &DeadLetter{ID: r.ID, Message: msg, Topic: r.Topic, Handler: r.Handler, Group: r.Group, Attempts: r.Attempts,
		Retries: r.Retries, FirstFailedAt: r.FirstFailedAt, LastFailedAt: r.LastFailedAt, DeadAt: r.DeadAt}
	if r.Fault != "" {
		_ = json.Unmarshal([]byte(r.Fault), &d.Fault)
	}
	d.Fault.Type, d.Fault.Error = r.FaultType, r.FaultError
	return d, nil
}

// Filter selects dead letters; zero fields select everything.
type Filter struct {
	Topic         string    `json:"topic,omitempty"`          // original topic, exact
	Handler       string    `json:"handler,omitempty"`        // exact
	FaultType     string    `json:"fault_type,omitempty"`     // exact, "panic" for panics
	ErrorContains string    `json:"error_contains,omitempty"` // part of the error text, without case
	Since         time.Time `json:"since,omitzero"`           // dead at or after
	Until         time.Time `json:"until,omitzero"`           // dead before
	// AfterID and Limit page through List: the rows after AfterID, at
	// most Limit (0: all). Mutations ignore AfterID and take Limit as the
	// most rows they touch.
	AfterID int64 `json:"after_id,omitempty"`
	Limit   int   `json:"limit,omitempty"`
}

func (f Filter) toStore() store.DeadLetterFilter {
	return store.DeadLetterFilter{Topic: f.Topic, Handler: f.Handler, FaultType: f.FaultType, ErrorContains: f.ErrorContains,
		Since: f.Since, Until: f.Until, AfterID: f.AfterID, Limit: f.Limit}
}

// List returns the dead letters f selects, oldest first.
func (s *Store) List(ctx context.Context, f Filter) ([]*DeadLetter, error) {
	rows, err := s.st.Executor().DeadLetterList(ctx, s.t, f.toStore())
	if err != nil {
		return nil, fmt.Errorf("deadletter: list %s: %w", s.t.Name(), err)
	}
	out := make([]*DeadLetter, 0, len(rows))
	for i := range rows {
		d, err := fromRow(&rows[i])
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// Show returns dead letter id, or ErrNotFound.
func (s *Store) Show(ctx context.Context, id int64) (*DeadLetter, error) {
	rows, err := s.st.Executor().DeadLetterList(ctx, s.t, store.DeadLetterFilter{IDs: []int64{id}})
	if err != nil {
		return nil, fmt.Errorf("deadletter: show %d: %w", id, err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: %d in %s", ErrNotFound, id, s.t.Name())
	}
	return fromRow(&rows[0])
}

// TopicCount is the number of dead letters of one original topic.
type TopicCount struct {
	Topic     string        `json:"topic"`
	Count     int64         `json:"count"`
	Oldest    time.Time     `json:"oldest"`     // the oldest dead letter's dead_at
	OldestAge time.Duration `json:"oldest_age"` // now minus Oldest
}

// Counts counts the dead letters f selects per original topic, with the
// age of the oldest.
func (s *Store) Counts(ctx context.Context, f Filter) ([]TopicCount, error) {
	cs, err := s.st.Executor().DeadLetterCounts(ctx, s.t, f.toStore())
	if err != nil {
		return nil, fmt.Errorf("deadletter: count %s: %w", s.t.Name(), err)
	}
	now := s.now()
	out := make([]TopicCount, len(cs))
	for i, c := range cs {
		out[i] = TopicCount{Topic: c.Topic, Count: c.Count, Oldest: c.Oldest, OldestAge: now.Sub(c.Oldest)}
	}
	return out, nil
}

// GroupKey names a group of failures: one fault type in one handler.
type GroupKey struct {
	FaultType string `json:"fault_type"`
	Handler   string `json:"handler"`
}

// String returns "fault type@handler", the form ParseGroupKey reads (a
// fault type never holds "@"; a handler name may).
func (k GroupKey) String() string { return k.FaultType + "@" + k.Handler }

// ParseGroupKey reads the form GroupKey.String writes.
func ParseGroupKey(s string) (GroupKey, error) {
	i := strings.IndexByte(s, '@') // fault types (Go types, "panic") hold no @; handler names may
	if i < 0 {
		return GroupKey{}, fmt.Errorf("deadletter: group %q: want FAULT-TYPE@HANDLER (as groups prints it)", s)
	}
	return GroupKey{FaultType: s[:i], Handler: s[i+1:]}, nil
}

// Group is the dead letters of one fault type and handler.
type Group struct {
	GroupKey
	Count     int64     `json:"count"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Example   string    `json:"example"` // the newest one's error text
}

// Groups groups the dead letters f selects by fault type and handler,
// largest group first.
func (s *Store) Groups(ctx context.Context, f Filter) ([]Group, error) {
	gs, err := s.st.Executor().DeadLetterGroups(ctx, s.t, f.toStore())
	if err != nil {
		return nil, fmt.Errorf("deadletter: groups of %s: %w", s.t.Name(), err)
	}
	out := make([]Group, len(gs))
	for i, g := range gs {
		out[i] = Group{GroupKey: GroupKey{FaultType: g.FaultType, Handler: g.Handler}, Count: g.Count,
			FirstSeen: g.FirstSeen, LastSeen: g.LastSeen, Example: g.Example}
	}
	return out, nil
}

// AuditEntry is one mutation of the store.
type AuditEntry = store.DeadLetterAudit

// Audit returns the newest audit entries first, at most limit (0: all).
func (s *Store) Audit(ctx context.Context, limit int) ([]AuditEntry, error) {
	a, err := s.st.Executor().DeadLetterAuditList(ctx, s.t, limit)
	if err != nil {
		return nil, fmt.Errorf("deadletter: audit of %s: %w", s.t.Name(), err)
	}
	return a, nil
}
