package sql_test

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/hexeract/hexeract/adapters/internal/suite"
	hsql "github.com/hexeract/hexeract/adapters/sql"
	"github.com/hexeract/hexeract/internal/testenv"
)

// TestUniversalPubSub runs Watermill's universal Pub/Sub suite against
// PostgreSQL as a bus, configured as Hexeract does (pgx pool, BYTEA payload,
// offsets per group updated in the acknowledging transaction), with a table
// prefix of its own so its tables are easy to tell apart. Every constructor
// call without a group gets a new group, which reads the topic from its
// first row. (With one shared group the suite's concurrent-subscribers test
// takes minutes: the members of a group take turns on the group's offset
// row, see docs/transports.md.) The suite's tests run one after another: see
// suite.RunSequential. The ack deadline is shortened so that the suite's
// unacknowledged messages come back within its timeouts.
func TestUniversalPubSub(t *testing.T) {
	pool := testenv.Postgres(t)
	newPubSub := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		pub, sub, err := hsql.New(hsql.Config{Pool: pool, Group: group, TablePrefix: "hexeract_suite_", AckDeadline: 2 * time.Second}, watermill.NopLogger{})
		if err != nil {
			t.Fatalf("sql.New: %v", err)
		}
		return pub, sub
	}
	suite.RunSequential(t, suite.Fast(tests.Features{
		ConsumerGroups:                      true,
		ExactlyOnceDelivery:                 false,
		GuaranteedOrder:                     true,
		GuaranteedOrderWithSingleSubscriber: true,
		Persistent:                          true,
		NewSubscriberReceivesOldMessages:    true,
	}),
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			return newPubSub(t, "g"+watermill.NewShortUUID())
		},
		newPubSub,
	)
}
