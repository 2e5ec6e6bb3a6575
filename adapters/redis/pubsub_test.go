package redis_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	goredis "github.com/redis/go-redis/v9"

	"github.com/hexeract/hexeract/adapters/internal/suite"
	"github.com/hexeract/hexeract/adapters/redis"
	"github.com/hexeract/hexeract/internal/testenv"
)

func client(t *testing.T) *goredis.Client {
	t.Helper()
	o, err := redis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(o.ClientOptions)
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("Redis PING: %v\nstart it with: %s", err, testenv.StartRedis)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestUniversalPubSub runs Watermill's universal Pub/Sub suite against the
// Redis Streams transport as Hexeract configures it. Redelivery of a nacked
// message can overtake later ones, so only the single-subscriber order flag
// is set. Each constructor call without a group gets a new group, which
// starts at the beginning of the stream. Only the claim timings are
// shortened so the suite's no-ack test sees a redelivery within its timeout.
func TestUniversalPubSub(t *testing.T) {
	c := client(t)
	newPubSub := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		pub, sub, err := redis.New(redis.Config{
			Client:        c,
			Group:         group,
			ClaimInterval: time.Second,
			MaxIdleTime:   3 * time.Second,
		}, watermill.NopLogger{})
		if err != nil {
			t.Fatalf("redis.New: %v", err)
		}
		return pub, sub
	}
	tests.TestPubSub(t, suite.Fast(tests.Features{
		ConsumerGroups:                      true,
		ExactlyOnceDelivery:                 false,
		GuaranteedOrder:                     false,
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
