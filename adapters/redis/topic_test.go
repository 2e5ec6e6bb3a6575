package redis_test

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/adapters/redis"
)

// TestEmptyTopicRefused: the empty topic would be the empty stream key.
func TestEmptyTopicRefused(t *testing.T) {
	pub, sub, err := redis.New(redis.Config{Client: client(t)}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	defer sub.Close()
	if err := pub.Publish("", message.NewMessage(watermill.NewUUID(), []byte("{}"))); err == nil {
		t.Error("Publish to the empty topic succeeded")
	}
	if _, err := sub.Subscribe(context.Background(), ""); err == nil {
		t.Error("Subscribe to the empty topic succeeded")
	}
}
