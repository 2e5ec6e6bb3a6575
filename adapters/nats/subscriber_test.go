package nats_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	nc "github.com/nats-io/nats.go"

	"github.com/hexeract/hexeract/adapters/nats"
	"github.com/hexeract/hexeract/internal/testenv"
)

// A message with a header of several values (which Watermill's NATS
// unmarshaler refuses, so the message came back after every ack wait) is
// handed out with the values joined.
func TestMultiValueHeaderIsDelivered(t *testing.T) {
	url := testenv.NATSURL(t)
	topic := "hexeract.multi." + testenv.Suffix()
	pub, sub, err := nats.New(nats.Config{URL: url, Group: "multi" + testenv.Suffix()}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	defer sub.Close()
	conn, err := nc.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	js, err := conn.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = js.DeleteStream(nats.StreamName(topic)) })
	if err := sub.SubscribeInitialize(topic); err != nil {
		t.Fatal(err)
	}
	m := nc.NewMsg(topic)
	m.Header.Set(wnats.WatermillUUIDHdr, "multi-1")
	m.Header.Add("x-tag", "a")
	m.Header.Add("x-tag", "b")
	m.Data = []byte("body")
	if _, err := js.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-msgs:
		got.Ack()
		if got.UUID != "multi-1" || got.Metadata.Get("x-tag") != "a" || string(got.Payload) != "body" {
			t.Fatalf("got %s %v %q", got.UUID, got.Metadata, got.Payload)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the message with a multi-value header was not delivered")
	}
}
