package adapters_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	goredis "github.com/redis/go-redis/v9"

	"github.com/hexeract/hexeract/adapters"
	"github.com/hexeract/hexeract/adapters/redis"
	"github.com/hexeract/hexeract/internal/testenv"
)

// transportError opens Redis Streams with opts, subscribes, and then
// deletes the topic's stream (and so the group) under the subscriber, so
// that its reads fail: a transport-level error Watermill logs.
func transportError(t *testing.T, opts ...adapters.Option) {
	t.Helper()
	rawURL := testenv.RedisURL(t)
	tr, err := adapters.Open(context.Background(), rawURL, append(opts, adapters.WithGroup("logs"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	topic := "hexeract.logs." + testenv.Suffix()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := tr.Subscriber.Subscribe(ctx, topic); err != nil {
		t.Fatal(err)
	}
	o, err := redis.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(o.ClientOptions)
	defer c.Close()
	time.Sleep(200 * time.Millisecond)
	if err := c.Del(context.Background(), topic).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
}

// TestOpenLogsToSlogDefault: without a logger option, a transport's errors
// reach slog.Default() at error level.
func TestOpenLogsToSlogDefault(t *testing.T) {
	var buf testenv.Logs
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	defer slog.SetDefault(prev)
	transportError(t)
	if logs := buf.String(); !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "NOGROUP") {
		t.Fatalf("slog.Default got no transport error:\n%s", logs)
	}
}

// TestOpenWithLogger: WithLogger takes a *slog.Logger and sends a
// transport's errors to it, at error level, and its life-cycle lines at
// debug level.
func TestOpenWithLogger(t *testing.T) {
	var buf testenv.Logs
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	transportError(t, adapters.WithLogger(l))
	logs := buf.String()
	if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "NOGROUP") {
		t.Fatalf("the logger got no transport error:\n%s", logs)
	}
	if !strings.Contains(logs, `level=DEBUG msg="Subscribing to redis stream topic"`) {
		t.Fatalf("life-cycle lines not at debug level:\n%s", logs)
	}
}

// TestOpenWithWatermillLogger: WithWatermillLogger sends a transport's
// errors to the given Watermill logger.
func TestOpenWithWatermillLogger(t *testing.T) {
	var buf testenv.Logs
	transportError(t, adapters.WithWatermillLogger(watermill.NewStdLoggerWithOut(&buf, false, false)))
	if logs := buf.String(); !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "NOGROUP") {
		t.Fatalf("the Watermill logger got no transport error:\n%s", logs)
	}
}
