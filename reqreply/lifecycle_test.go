package reqreply_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters/gochannel"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/reqreply"
)

// countingSubscriber records the reply subscriptions and whether each ended.
type countingSubscriber struct {
	message.Subscriber
	mu     sync.Mutex
	topics []string
	open   int
}

func (s *countingSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	ch, err := s.Subscriber.Subscribe(ctx, topic)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.topics = append(s.topics, topic)
	s.open++
	s.mu.Unlock()
	go func() { <-ctx.Done(); s.mu.Lock(); s.open--; s.mu.Unlock() }()
	return ch, nil
}

func (s *countingSubscriber) state() (subscribed, open int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.topics), s.open
}

// The client belongs to its App: created before Run it does not subscribe,
// App.Run starts it, App.Close ends its reply subscription, and its
// counters are read from the client and from the App. The transport is
// shared and left open, so nothing but App.Close can end the subscription.
func TestClientStartsWithRunAndClosesWithTheApp(t *testing.T) {
	ps := gochannel.New(gochannel.Config{Buffer: 64}, nil)
	t.Cleanup(func() { _ = ps.Close() })
	replies := &countingSubscriber{Subscriber: ps}
	app, err := hexeract.New(hexeract.WithPubSub(ps, ps), hexeract.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if err := reqreply.Handle(app, doubleHandler("a", nil)); err != nil {
		t.Fatal(err)
	}
	c, err := reqreply.NewClient(app, reqreply.WithReplySubscriber(replies))
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := replies.state(); n != 0 {
		t.Fatalf("NewClient subscribed %d times before the App ran", n)
	}
	stop := testenv.StartApp(t, app)
	if n, open := replies.state(); n != 1 || open != 1 {
		t.Fatalf("after Run: %d subscriptions, %d open; want the client's one", n, open)
	}
	got, err := reqreply.Call[Double, Doubled](context.Background(), c, Double{N: 2}, reqreply.Timeout(10*time.Second))
	if err != nil || got.Result != 4 {
		t.Fatalf("got %+v, %v", got, err)
	}
	if st := c.Stats(); st.Requests != 1 || st.Replies != 1 || st != reqreply.StatsFor(app) {
		t.Fatalf("client stats %+v, App stats %+v", st, reqreply.StatsFor(app))
	}
	stop()
	if _, open := replies.state(); open != 1 {
		t.Fatal("the reply subscription ended with Run; App.Close owns it")
	}
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "the reply subscription to end", func() bool { _, open := replies.state(); return open == 0 })
	if _, err := reqreply.NewClient(app); err == nil {
		t.Error("NewClient on a closed App should fail")
	}
}
