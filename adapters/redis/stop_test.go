package redis_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	wredis "github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	goredis "github.com/redis/go-redis/v9"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters/redis"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/internal/wmlog"
)

// TestRunReturnsWhenWatermillsReadLoopEnds plugs Watermill's own Redis
// Streams subscriber, with its own unmarshaller, into an App and writes an
// entry without the UUID field: Watermill's read loop returns and the
// subscription closes. App.Run must return at once with ErrRouterStopped
// naming the topic, not hang with the topic unconsumed; and the error
// reaches the App's logger.
func TestRunReturnsWhenWatermillsReadLoopEnds(t *testing.T) {
	c := client(t)
	topic := "hexeract.stop." + testenv.Suffix()
	t.Cleanup(func() { c.Del(context.Background(), topic) })
	var logs testenv.Logs
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	sub, err := wredis.NewSubscriber(wredis.SubscriberConfig{Client: c, ConsumerGroup: "stop", OldestId: "0"}, wmlog.New(logger))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	pub, err := redis.NewPublisher(redis.Config{Client: c}, nil)
	if err != nil {
		t.Fatal(err)
	}
	app, err := hexeract.New(hexeract.WithPubSub(pub, sub), hexeract.WithLogger(logger),
		hexeract.WithRouterConfig(message.RouterConfig{CloseTimeout: 3 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	if err := app.AddHandler("h", topic, func(*message.Message) error { return nil }); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.Run(context.Background()) }()
	<-app.Running()
	if err := c.XAdd(context.Background(), &goredis.XAddArgs{Stream: topic, Values: map[string]any{"payload": "no uuid"}}).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, hexeract.ErrRouterStopped) || !strings.Contains(err.Error(), topic) {
			t.Fatalf("Run = %v, want ErrRouterStopped naming %s", err, topic)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the subscription ended")
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "_watermill_message_uuid key is missing") {
		t.Errorf("the App's logger did not get the transport's error:\n%s", l)
	}
}
