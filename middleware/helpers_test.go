package middleware_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	wmmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/google/uuid"
)

type UserRegistered struct {
	UserID string `json:"user_id"`
}

func (UserRegistered) MessageType() string { return "users.registered" }

type WelcomeSent struct {
	UserID string `json:"user_id"`
}

func (WelcomeSent) MessageType() string { return "welcome.sent" }

type AuditWritten struct {
	UserID string `json:"user_id"`
}

func (AuditWritten) MessageType() string { return "audit.written" }

func newPubSub(t testing.TB) *gochannel.GoChannel {
	t.Helper()
	ps := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 256}, watermill.NopLogger{})
	t.Cleanup(func() { _ = ps.Close() })
	return ps
}

func topicName(prefix string) string { return prefix + "." + uuid.NewString()[:8] }

// runRouter runs a Watermill router with one handler and the given
// middleware (first outermost) until the test ends.
func runRouter(t testing.TB, sub message.Subscriber, topic string, h message.NoPublishHandlerFunc, mw ...message.HandlerMiddleware) {
	t.Helper()
	r, err := message.NewRouter(message.RouterConfig{CloseTimeout: 5 * time.Second}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	r.AddMiddleware(mw...)
	r.AddConsumerHandler("handler-"+topic, topic, sub, h)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	select {
	case <-r.Running():
	case <-time.After(5 * time.Second):
		t.Fatal("router did not start")
	}
	t.Cleanup(func() {
		cancel()
		_ = r.Close()
		<-done
	})
}

// subscribe returns the messages of topic, acking each as it is read.
func subscribe(t testing.TB, sub message.Subscriber, topic string) <-chan *message.Message {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	in, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan *message.Message, 256)
	go func() {
		for m := range in {
			m.Ack()
			out <- m
		}
		close(out)
	}()
	return out
}

func recv[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		var zero T
		t.Fatalf("timed out waiting for %T", zero)
		return zero
	}
}

func publish(t testing.TB, pub message.Publisher, topic string, msgs ...*message.Message) {
	t.Helper()
	if err := pub.Publish(topic, msgs...); err != nil {
		t.Fatal(err)
	}
}

// flakyPublisher fails its first n publishes to topics ending in suffix.
type flakyPublisher struct {
	message.Publisher
	suffix string
	mu     sync.Mutex
	fails  int
	failed int
}

func (p *flakyPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.Lock()
	if len(topic) >= len(p.suffix) && topic[len(topic)-len(p.suffix):] == p.suffix && p.failed < p.fails {
		p.failed++
		p.mu.Unlock()
		return fmt.Errorf("broker unavailable (simulated failure %d)", p.failed)
	}
	p.mu.Unlock()
	return p.Publisher.Publish(topic, msgs...)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func wmTimeout(d time.Duration) message.HandlerMiddleware { return wmmiddleware.Timeout(d) }

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
