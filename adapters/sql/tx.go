package sql

import (
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/jackc/pgx/v5"
)

// TxPublisher returns a publisher that inserts into the topic tables within
// tx, so the messages are published if and only if tx commits. It never
// creates tables: the topic's tables must exist. logger may be nil.
func (c Config) TxPublisher(tx pgx.Tx, logger watermill.LoggerAdapter) (*Publisher, error) {
	c = c.withDefaults()
	p, err := wsql.NewPublisher(wsql.TxFromPgx(tx), wsql.PublisherConfig{
		SchemaAdapter: c.schemaAdapter(),
	}, nopIfNil(logger))
	if err != nil {
		return nil, fmt.Errorf("sql: publisher in a transaction: %w", err)
	}
	return &Publisher{p}, nil
}

// TableName returns the unquoted name of a table of topic (kind "" for the
// messages table, "offsets_" for the offsets table), without the schema.
func (c Config) TableName(kind, topic string) string {
	c = c.withDefaults()
	c.Schema = ""
	q := c.tableName(kind, topic)
	return q[1 : len(q)-1]
}
