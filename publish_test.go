package hexeract_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/router"
)

// noWireName is a message type whose MessageType is empty.
type noWireName struct{}

func (noWireName) MessageType() string { return "" }

// recordingPublisher keeps every Publish call's topic and message slice as
// given (a publisher may keep the slice it was given, for example to send it
// later).
type recordingPublisher struct {
	mu    sync.Mutex
	calls []publishCall
}

type publishCall struct {
	topic string
	msgs  []*message.Message
}

func (p *recordingPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, publishCall{topic, msgs})
	return nil
}

func (p *recordingPublisher) Close() error { return nil }

func (p *recordingPublisher) recorded() []publishCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]publishCall(nil), p.calls...)
}

// TestPublishRefusesBadMessagesBeforePublishingAny publishes batches with a
// bad message in them. A message without a wire name used to be published
// on the empty topic with an empty ce_type, which no handler can take; a nil
// message (or an encode error) after good ones for another topic failed the
// call after those were already published.
func TestPublishRefusesBadMessagesBeforePublishingAny(t *testing.T) {
	ctx := context.Background()
	for name, msgs := range map[string][]router.Message{
		"no wire name":            {noWireName{}},
		"no wire name at the end": {UserRegistered{UserID: "1"}, OrderPlaced{OrderID: "2"}, noWireName{}},
		"nil at the end":          {UserRegistered{UserID: "1"}, OrderPlaced{OrderID: "2"}, nil},
	} {
		pub := &recordingPublisher{}
		app, err := hexeract.New(hexeract.WithPublisher(pub))
		if err != nil {
			t.Fatal(err)
		}
		if err := app.Publish(ctx, msgs...); err == nil {
			t.Errorf("%s: Publish returned nil", name)
		}
		if calls := pub.recorded(); len(calls) != 0 {
			t.Errorf("%s: %d Publish calls reached the transport, first on topic %q", name, len(calls), calls[0].topic)
		}
	}
	pub := &recordingPublisher{}
	app, _ := hexeract.New(hexeract.WithPublisher(pub), hexeract.WithTopicFunc(func(string) string { return "" }))
	if err := app.Publish(ctx, UserRegistered{}); err == nil || !strings.Contains(err.Error(), "empty topic") {
		t.Errorf("topic function returning an empty topic: %v", err)
	}
	if calls := pub.recorded(); len(calls) != 0 {
		t.Errorf("empty topic: %d Publish calls reached the transport", len(calls))
	}
}

// TestPublishDoesNotReuseAPublishedBatch publishes two messages for one topic
// and one for another. Publish used to reuse the first batch's slice for the
// second, overwriting what the publisher had been given.
func TestPublishDoesNotReuseAPublishedBatch(t *testing.T) {
	pub := &recordingPublisher{}
	app, err := hexeract.New(hexeract.WithPublisher(pub))
	if err != nil {
		t.Fatal(err)
	}
	err = app.Publish(context.Background(),
		UserRegistered{UserID: "1"}, UserRegistered{UserID: "2"}, OrderPlaced{OrderID: "3"})
	if err != nil {
		t.Fatal(err)
	}
	calls := pub.recorded()
	if len(calls) != 2 {
		t.Fatalf("%d Publish calls, want 2", len(calls))
	}
	for i, want := range []struct {
		topic string
		types []string
	}{
		{"users.registered", []string{"users.registered", "users.registered"}},
		{"orders.placed", []string{"orders.placed"}},
	} {
		c := calls[i]
		var types []string
		for _, m := range c.msgs {
			types = append(types, m.Metadata.Get(router.KeyType))
		}
		if c.topic != want.topic || strings.Join(types, ",") != strings.Join(want.types, ",") {
			t.Errorf("call %d: topic %q with %v, want %q with %v", i, c.topic, types, want.topic, want.types)
		}
	}
}
