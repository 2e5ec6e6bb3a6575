package sql_test

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	hsql "github.com/hexeract/hexeract/adapters/sql"
	"github.com/hexeract/hexeract/internal/testenv"
)

// TestEmptyTopicRefused: no table name can be built from the empty topic.
func TestEmptyTopicRefused(t *testing.T) {
	pub, sub, err := hsql.New(hsql.Config{Pool: testenv.Postgres(t), TablePrefix: "hexeract_empty_"}, watermill.NopLogger{})
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
	if err := sub.SubscribeInitialize(""); err == nil {
		t.Error("SubscribeInitialize of the empty topic succeeded")
	}
}
