package replynats_test

import (
	"context"
	"testing"
	"time"

	nc "github.com/nats-io/nats.go"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/reqreply/replynats"
)

// A reply published on another connection right after Subscribe returned
// is received: Subscribe waits until the server knows the subscription
// (core NATS delivers only to subscriptions it knows). A client subscribes
// to its reply topic just before its first request when its App does not
// run yet, and the responder's reply can come back very fast.
func TestReplyPublishedRightAfterSubscribeArrives(t *testing.T) {
	url := testenv.NATSURL(t)
	other, err := nc.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for i := range 100 {
		sub, err := replynats.NewReplySubscriber(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		topic := "replies." + testenv.Suffix()
		ch, err := sub.Subscribe(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Publish(topic, []byte("reply")); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-ch:
			m.Ack()
		case <-time.After(2 * time.Second):
			t.Fatalf("attempt %d: the reply published right after Subscribe was lost", i)
		}
		cancel()
		_ = sub.Close()
	}
}
