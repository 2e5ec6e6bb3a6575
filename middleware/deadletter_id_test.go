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
		gen := dl.Metadata.Get(middleware.KeyFaultGeneratedID)
		switch {
		case tc.generated:
			if _, err := uuid.Parse(dl.UUID); err != nil || gen != "true" {
				t.Errorf("payload %q: dead letter id %q (%v), %s=%q; want a generated UUID marked true", tc.msg.Payload, dl.UUID, err, middleware.KeyFaultGeneratedID, gen)
			}
		case dl.UUID != tc.want || gen != "":
			t.Errorf("payload %q: dead letter id %q, %s=%q; want %q, unmarked", tc.msg.Payload, dl.UUID, middleware.KeyFaultGeneratedID, gen, tc.want)
		}
		if string(dl.Payload) != string(tc.msg.Payload) {
			t.Errorf("dead letter payload %q, want %q", dl.Payload, tc.msg.Payload)
		}
	}
}
