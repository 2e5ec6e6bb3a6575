// Package sql configures Watermill's SQL transport
// (github.com/ThreeDotsLabs/watermill-sql/v4) on PostgreSQL through pgx, so
// PostgreSQL serves as the message bus for teams with no broker:
//
//   - one table per topic holds the messages (payload as BYTEA, metadata as
//     JSON), created on first use; a second table per topic holds each
//     consumer group's offset;
//   - consumers of a group share the topic; each group gets every message,
//     in commit order; a message is marked consumed in the same transaction
//     that acknowledges it, so a crash before the ack means redelivery, never
//     loss;
//   - consumers poll (default every 100ms when idle) and read in batches.
//
// Messages are never deleted by the transport: prune old rows of the topic
// tables with a scheduled job when they are no longer needed.
package sql

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hexeract/hexeract/internal/sqlident"
)

// DefaultGroup is the consumer group used when Config.Group is empty.
const DefaultGroup = "hexeract"

// Defaults of the zero Config fields.
const (
	DefaultTablePrefix  = "hexeract_bus_"
	DefaultPollInterval = 100 * time.Millisecond
	DefaultBatchSize    = 100
	DefaultAckDeadline  = 30 * time.Second
)

// Config configures the PostgreSQL transport. Only Pool is required.
type Config struct {
	// Pool is the pgx pool the transport uses.
	Pool *pgxpool.Pool

	// Group is the consumer group; empty means DefaultGroup.
	Group string

	// Schema is the PostgreSQL schema of the tables; "" means the search path.
	Schema string

	// TablePrefix starts every table name; "" means DefaultTablePrefix.
	// Tables are named <prefix><topic> and <prefix>offsets_<topic>.
	TablePrefix string

	// PollInterval is the wait between queries when no message was found;
	// 0 means DefaultPollInterval.
	PollInterval time.Duration

	// BatchSize is the number of messages read per query; 0 means
	// DefaultBatchSize.
	BatchSize int

	// AckDeadline is how long a handler may hold a message before it is
	// nacked and redelivered; 0 means DefaultAckDeadline.
	AckDeadline time.Duration
}

// Validate reports configuration errors, with what to change.
func (c Config) Validate() error {
	var errs []error
	if c.Pool == nil {
		errs = append(errs, errors.New("sql: Config.Pool is nil; pass a *pgxpool.Pool"))
	}
	return errors.Join(append(errs, c.validateOptions())...)
}

// validateOptions checks every field but Pool.
func (c Config) validateOptions() error {
	var errs []error
	if c.Schema != "" {
		if n, err := sqlident.Parse(c.Schema); err != nil || n.Schema != "" {
			errs = append(errs, fmt.Errorf("sql: Config.Schema %q is not a valid schema name (lower-case letters, digits, underscores)", c.Schema))
		}
	}
	if c.TablePrefix != "" {
		if _, err := sqlident.Parse(c.TablePrefix); err != nil {
			errs = append(errs, fmt.Errorf("sql: Config.TablePrefix: %w", err))
		}
	}
	if c.PollInterval < 0 || c.BatchSize < 0 || c.AckDeadline < 0 {
		errs = append(errs, errors.New("sql: Config.PollInterval, BatchSize and AckDeadline must not be negative"))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.TablePrefix == "" {
		c.TablePrefix = DefaultTablePrefix
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.AckDeadline == 0 {
		c.AckDeadline = DefaultAckDeadline
	}
	return c
}

// tableName returns the quoted, schema-qualified name of a table. Watermill
// has already refused topics with characters other than letters, digits and
// - $ : . _, so quoting is safe; names longer than PostgreSQL's 63-byte limit
// are shortened with a hash so two topics never share a table.
func (c Config) tableName(kind, topic string) string {
	name := c.TablePrefix + kind + topic
	if len(name) > 63 {
		sum := sha256.Sum256([]byte(topic))
		h := hex.EncodeToString(sum[:5])
		name = name[:63-len(h)-1] + "_" + h
	}
	q := `"` + name + `"`
	if c.Schema != "" {
		q = `"` + c.Schema + `".` + q
	}
	return q
}

// MessagesTable returns the quoted table that stores topic's messages.
func (c Config) MessagesTable(topic string) string {
	return c.withDefaults().tableName("", topic)
}

// OffsetsTable returns the quoted table that stores topic's group offsets.
func (c Config) OffsetsTable(topic string) string {
	return c.withDefaults().tableName("offsets_", topic)
}

func (c Config) schemaAdapter() wsql.SchemaAdapter {
	return schema{wsql.DefaultPostgreSQLSchema{
		GenerateMessagesTableName: func(topic string) string { return c.tableName("", topic) },
		GeneratePayloadType:       func(string) string { return "BYTEA" },
		SubscribeBatchSize:        c.BatchSize,
	}}
}

func (c Config) offsetsAdapter() wsql.OffsetsAdapter {
	return wsql.DefaultPostgreSQLOffsetsAdapter{
		GenerateMessagesOffsetsTableName: func(topic string) string { return c.tableName("offsets_", topic) },
	}
}

// Publisher is Watermill's SQL publisher, refusing the empty topic (from
// which no table name can be built).
type Publisher struct{ *wsql.Publisher }

// Publish inserts msgs into topic's table.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if topic == "" {
		return errEmptyTopic
	}
	return p.Publisher.Publish(topic, msgs...)
}

// Subscriber is Watermill's SQL subscriber, refusing the empty topic.
type Subscriber struct{ *wsql.Subscriber }

// Subscribe consumes topic as a member of the configured group.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if topic == "" {
		return nil, errEmptyTopic
	}
	return s.Subscriber.Subscribe(ctx, topic)
}

// SubscribeInitialize creates topic's tables.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	if topic == "" {
		return errEmptyTopic
	}
	return s.Subscriber.SubscribeInitialize(topic)
}

var errEmptyTopic = errors.New("sql: empty topic; every topic names a table")

// NewPublisher returns a publisher that inserts into the topic tables,
// creating them on first use. logger may be nil.
func NewPublisher(cfg Config, logger watermill.LoggerAdapter) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	p, err := wsql.NewPublisher(wsql.BeginnerFromPgx(cfg.Pool), wsql.PublisherConfig{
		SchemaAdapter:        cfg.schemaAdapter(),
		AutoInitializeSchema: true,
	}, nopIfNil(logger))
	if err != nil {
		return nil, fmt.Errorf("sql: publisher: %w", err)
	}
	return &Publisher{p}, nil
}

// NewSubscriber returns a subscriber of cfg.Group, creating the tables on
// first use. logger may be nil.
func NewSubscriber(cfg Config, logger watermill.LoggerAdapter) (*Subscriber, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	ack := cfg.AckDeadline
	s, err := wsql.NewSubscriber(wsql.BeginnerFromPgx(cfg.Pool), wsql.SubscriberConfig{
		ConsumerGroup:    cfg.Group,
		AckDeadline:      &ack,
		PollInterval:     cfg.PollInterval,
		ResendInterval:   cfg.PollInterval,
		RetryInterval:    time.Second,
		SchemaAdapter:    cfg.schemaAdapter(),
		OffsetsAdapter:   cfg.offsetsAdapter(),
		InitializeSchema: true,
	}, nopIfNil(logger))
	if err != nil {
		return nil, fmt.Errorf("sql: subscriber: %w", err)
	}
	return &Subscriber{s}, nil
}

// New returns a publisher and a subscriber on cfg.Pool. Close both when done;
// the pool stays open.
func New(cfg Config, logger watermill.LoggerAdapter) (*Publisher, *Subscriber, error) {
	pub, err := NewPublisher(cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	sub, err := NewSubscriber(cfg, logger)
	if err != nil {
		_ = pub.Close()
		return nil, nil, err
	}
	return pub, sub, nil
}

// connect opens and pings a pool.
func connect(ctx context.Context, pc *pgxpool.Config) (*pgxpool.Pool, error) {
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("sql: connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("sql: connect: %w", err)
	}
	return pool, nil
}

func nopIfNil(l watermill.LoggerAdapter) watermill.LoggerAdapter {
	if l == nil {
		return watermill.NopLogger{}
	}
	return l
}
