package amqp_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/adapters/amqp"
	"github.com/hexeract/hexeract/internal/testenv"
)

// A reply reaches the reply subscriber's exclusive queue through the
// default exchange; closing the reply publisher leaves the publisher it
// was derived from (and their shared connection) working, and closing the
// reply subscriber removes its queue, so a later reply is dropped.
func TestReplyChannel(t *testing.T) {
	rawURL := testenv.AMQPURL(t)
	pub, err := amqp.NewPublisher(amqp.Config{URL: rawURL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pub.Close() }()
	if pub.ReplyScheme() != amqp.ReplyScheme {
		t.Fatalf("ReplyScheme = %q", pub.ReplyScheme())
	}
	sub, err := pub.NewReplySubscriber()
	if err != nil {
		t.Fatal(err)
	}
	topic := "hexeract.replies.test-" + testenv.Suffix()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	replies, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	rp, err := pub.NewReplyPublisher()
	if err != nil {
		t.Fatal(err)
	}
	msg := message.NewMessage("r-1", []byte(`{"ok":true}`))
	msg.Metadata.Set("request_id", "q-1")
	if err := rp.Publish(topic, msg); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-replies:
		if m.UUID != "r-1" || m.Metadata.Get("request_id") != "q-1" || string(m.Payload) != `{"ok":true}` {
			t.Fatalf("got %s %v %s", m.UUID, m.Metadata, m.Payload)
		}
		m.Ack()
	case <-time.After(10 * time.Second):
		t.Fatal("no reply through the default exchange")
	}
	if err := rp.Close(); err != nil {
		t.Fatal(err)
	}
	if !pub.IsConnected() {
		t.Fatal("closing the reply publisher closed the shared connection")
	}
	sfx := testenv.Suffix()
	t.Cleanup(func() { _ = testenv.DeleteAMQPExchanges(rawURL, sfx) })
	if err := pub.Publish("hexeract.reply-test-"+sfx, message.NewMessage("x", nil)); err != nil {
		t.Fatalf("the publisher fails after its reply publisher was closed: %v", err)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	// The queue is gone: publishing into it through a new reply publisher
	// is dropped by the broker (no error, nothing to receive).
	rp2, err := pub.NewReplyPublisher()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rp2.Close() }()
	if err := rp2.Publish(topic, message.NewMessage("r-2", nil)); err != nil {
		t.Fatal(err)
	}
	_ = pub.Close()
	if _, err := pub.NewReplyPublisher(); err == nil {
		t.Fatal("NewReplyPublisher on a closed publisher should fail")
	}
}
