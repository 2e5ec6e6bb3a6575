package nats_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/adapters/nats"
	"github.com/hexeract/hexeract/internal/testenv"
)

// Replies travel on core NATS through the publisher's connection; the
// subscription ends with its context and with Close, and neither the reply
// publisher nor the reply subscriber closes the connection.
func TestReplyChannel(t *testing.T) {
	pub, err := nats.NewPublisher(nats.Config{URL: testenv.NATSURL(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pub.Close() }()
	if pub.ReplyScheme() != nats.ReplyScheme {
		t.Fatalf("ReplyScheme = %q", pub.ReplyScheme())
	}
	sub, err := pub.NewReplySubscriber()
	if err != nil {
		t.Fatal(err)
	}
	rp, err := pub.NewReplyPublisher()
	if err != nil {
		t.Fatal(err)
	}
	topic := "hexeract.replies.test-" + testenv.Suffix()
	ctx, cancel := context.WithCancel(context.Background())
	replies, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"r-1", "r-2"} {
		msg := message.NewMessage(id, []byte("{}"))
		msg.Metadata.Set("request_id", id)
		if err := rp.Publish(topic, msg); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-replies:
			if m.UUID != id || m.Metadata.Get("request_id") != id {
				t.Fatalf("reply %d: got %s %v", i, m.UUID, m.Metadata)
			}
			m.Ack()
		case <-time.After(5 * time.Second):
			t.Fatalf("reply %d lost", i)
		}
	}
	cancel()
	select {
	case _, ok := <-replies:
		if ok {
			t.Fatal("a message after the context ended")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the subscription did not end with its context")
	}
	replies2, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-replies2; ok {
		t.Fatal("a message after Close")
	}
	if err := rp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rp.Publish(topic, message.NewMessage("x", nil)); err == nil {
		t.Fatal("Publish after Close should fail")
	}
	if _, err := sub.Subscribe(context.Background(), topic); err == nil {
		t.Fatal("Subscribe after Close should fail")
	}
	other := "reply-test." + testenv.Suffix()
	t.Cleanup(func() {
		if conn, err := (nats.Config{URL: testenv.NATSURL(t)}).Connect(); err == nil {
			if js, err := conn.JetStream(); err == nil {
				_ = js.DeleteStream(nats.StreamName(other))
			}
			conn.Close()
		}
	})
	if err := pub.Publish(other, message.NewMessage("y", nil)); err != nil {
		t.Fatalf("the publisher fails after its reply channel was closed: %v", err)
	}
}
