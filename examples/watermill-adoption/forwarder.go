package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// legacyForwarder is the service's Watermill forwarder (step 5): producers
// write enveloped messages into a watermill-sql table in their own
// transaction, and the forwarder moves them to the real transport.
type legacyForwarder struct {
	pool   *pgxpool.Pool
	topic  string // the forwarder topic: its table is watermill_<topic>
	group  string // the forwarder's consumer group
	schema wsql.DefaultPostgreSQLSchema
	fwd    *forwarder.Forwarder
	done   chan error
}

// startForwarder creates the forwarder's tables and runs it, forwarding to
// out.
func startForwarder(ctx context.Context, pool *pgxpool.Pool, topic string, out message.Publisher, logger watermill.LoggerAdapter) (*legacyForwarder, error) {
	f := &legacyForwarder{pool: pool, topic: topic, group: "forwarder", done: make(chan error, 1)}
	sub, err := wsql.NewSubscriber(wsql.BeginnerFromPgx(pool), wsql.SubscriberConfig{
		ConsumerGroup:    f.group,
		SchemaAdapter:    f.schema,
		OffsetsAdapter:   wsql.DefaultPostgreSQLOffsetsAdapter{},
		InitializeSchema: true,
		PollInterval:     50 * time.Millisecond,
	}, logger)
	if err != nil {
		return nil, err
	}
	if err := sub.SubscribeInitialize(topic); err != nil {
		return nil, err
	}
	f.fwd, err = forwarder.NewForwarder(sub, out, logger, forwarder.Config{ForwarderTopic: topic})
	if err != nil {
		return nil, err
	}
	go func() { f.done <- f.fwd.Run(ctx) }()
	select {
	case <-f.fwd.Running():
	case err := <-f.done:
		return nil, fmt.Errorf("forwarder stopped: %w", err)
	}
	return f, nil
}

// publishInTx is the legacy producer's write: msg for topic, enveloped
// into the forwarder's table in the producer's transaction.
func (f *legacyForwarder) publishInTx(tx pgx.Tx, topic string, msg *message.Message) error {
	pub, err := wsql.NewPublisher(wsql.TxFromPgx(tx), wsql.PublisherConfig{SchemaAdapter: f.schema}, watermill.NopLogger{})
	if err != nil {
		return err
	}
	return forwarder.NewPublisher(pub, forwarder.PublisherConfig{ForwarderTopic: f.topic}).Publish(topic, msg)
}

// drained reports whether the forwarder has forwarded (acked) every
// message written to its table: the cut-over check of step 5.
func (f *legacyForwarder) drained(ctx context.Context) (bool, error) {
	var last, acked int64
	err := f.pool.QueryRow(ctx, `SELECT COALESCE(MAX("offset"), 0) FROM `+f.schema.MessagesTable(f.topic)).Scan(&last)
	if err != nil {
		return false, err
	}
	err = f.pool.QueryRow(ctx, `SELECT COALESCE(MAX(offset_acked), 0) FROM `+wsql.DefaultPostgreSQLOffsetsAdapter{}.MessagesOffsetsTable(f.topic)+
		` WHERE consumer_group = $1`, f.group).Scan(&acked)
	if err != nil {
		return false, err
	}
	return acked >= last, nil
}

// waitDrained waits until the forwarder's table is drained.
func (f *legacyForwarder) waitDrained(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := f.drained(ctx)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the forwarder's table %s was not drained within %s", f.schema.MessagesTable(f.topic), timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Close stops the forwarder.
func (f *legacyForwarder) Close() error {
	err := f.fwd.Close()
	return errors.Join(err, <-f.done)
}

// tables are the forwarder's tables, quoted, for cleanup.
func (f *legacyForwarder) tables() []string {
	return []string{f.schema.MessagesTable(f.topic), wsql.DefaultPostgreSQLOffsetsAdapter{}.MessagesOffsetsTable(f.topic)}
}
