package middleware_test

import (
	"errors"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
)

// TestDeadLetterAlwaysHasAnID: the dead letter's UUID is the message's
// Watermill UUID, else its ce_id, else the id of the structured CloudEvent
// in its body, else a generated id marked hexeract_fault_generated_id.
func TestDeadLetterAlwaysHasAnID(t *testing.T) {
	ps := newPubSub(t)
	topic := topicName("ids")
	dlq := subscribe(t, ps, topic+".dlq")
	dead := must(middleware.DeadLetter(ps, middleware.DeadLetterOptions{}))
	runRouter(t, ps, topic, func(*message.Message) error { return router.Permanent(errors.New("refused")) }, dead)

	withUUID := message.NewMessage("wm-1", []byte("x"))
	withUUID.Metadata.Set(router.KeyID, "ce-1")
	withCEID := message.NewMessage("", []byte("x"))
	withCEID.Metadata.Set(router.KeyID, "ce-2")
	structured := message.NewMessage("", []byte(`{"specversion":"1.0","id":"evt-3","source":"/s"}`)) // no type: invalid, id readable
	structured.Metadata.Set(router.KeyContentType, "application/cloudevents+json; charset=utf-8")
	dapr := message.NewMessage("", []byte(`{"specversion":"1.0","id":"dapr-4","type":"t"}`)) // Dapr: no content type
	nothing := message.NewMessage("", []byte("garbage"))
	nothing.Metadata.Set(router.KeyContentType, router.ContentTypeCloudEvents)

	for _, tc := range []struct {
		msg       *message.Message
		want      string // "" = generated
		generated bool
	}{
		{withUUID, "wm-1", false},
		{withCEID, "ce-2", false},
		{structured, "evt-3", false},
		{dapr, "dapr-4", false},
		{nothing, "", true},
	} {
		publish(t, ps, topic, tc.msg)
		dl := recv(t, dlq)
		gen := dl.Metadata.Get(router.KeyFaultGeneratedID)
		switch {
		case tc.generated:
			if _, err := uuid.Parse(dl.UUID); err != nil || gen != "true" {
				t.Errorf("payload %q: dead letter id %q (%v), %s=%q; want a generated UUID marked true", tc.msg.Payload, dl.UUID, err, router.KeyFaultGeneratedID, gen)
			}
		case dl.UUID != tc.want || gen != "":
			t.Errorf("payload %q: dead letter id %q, %s=%q; want %q, unmarked", tc.msg.Payload, dl.UUID, router.KeyFaultGeneratedID, gen, tc.want)
		}
		if string(dl.Payload) != string(tc.msg.Payload) {
			t.Errorf("dead letter payload %q, want %q", dl.Payload, tc.msg.Payload)
		}
	}
}

// TestDeadLetterThroughStructuredPublisher: a dead letter published through
// router.StructuredPublisher stays as the message was received (here a
// binary-mode event without ce_source, which ToStructured refuses), so the
// dead-letter publish does not fail and the message is not redelivered in
// a loop.
func TestDeadLetterThroughStructuredPublisher(t *testing.T) {
	ps := newPubSub(t)
	topic := topicName("structured-dlq")
	dlq := subscribe(t, ps, topic+".dlq")
	dead := must(middleware.DeadLetter(router.StructuredPublisher(ps, nil), middleware.DeadLetterOptions{}))
	runRouter(t, ps, topic, func(*message.Message) error { return router.Permanent(errors.New("refused")) }, dead)

	msg := message.NewMessage("m-1", []byte(`{"order_id":"o-1"}`))
	msg.Metadata.Set(router.KeyID, "m-1")
	msg.Metadata.Set(router.KeyType, "orders.placed") // no ce_source
	msg.Metadata.Set(router.KeyContentType, "application/json")
	if _, err := router.ToStructured(msg); err == nil {
		t.Fatal("ToStructured accepted an event without ce_source; the test needs one it refuses")
	}
	publish(t, ps, topic, msg)
	dl := recv(t, dlq)
	if dl.UUID != "m-1" || dl.Metadata.Get(router.KeyType) != "orders.placed" || dl.Metadata.Get(router.KeyContentType) != "application/json" ||
		string(dl.Payload) != `{"order_id":"o-1"}` || dl.Metadata.Get(router.KeyFaultError) == "" {
		t.Fatalf("dead letter %s %v %s", dl.UUID, dl.Metadata, dl.Payload)
	}
	// Dead letters of a valid event are left alone too, Hexeract's and
	// Watermill PoisonQueue's (this also holds router's copy of the fault
	// key to middleware's).
	for _, key := range []string{router.KeyFaultError, router.KeyPoisonReason} {
		dl := message.NewMessage("m-2", []byte(`{}`))
		dl.Metadata = message.Metadata{router.KeyID: "m-2", router.KeyType: "orders.placed", router.KeySource: "/s", key: "refused"}
		if out := publishedThrough(t, ps, router.StructuredPublisher(ps, nil), dl); out.Metadata.Get(router.KeyContentType) == router.ContentTypeCloudEvents {
			t.Errorf("a dead letter marked %s was written in structured mode", key)
		}
	}
}

// publishedThrough publishes msg with pub on a fresh topic and returns what
// arrives.
func publishedThrough(t *testing.T, sub message.Subscriber, pub message.Publisher, msg *message.Message) *message.Message {
	t.Helper()
	topic := topicName("passthrough")
	ch := subscribe(t, sub, topic)
	publish(t, pub, topic, msg)
	return recv(t, ch)
}
