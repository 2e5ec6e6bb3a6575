package router_test

import (
	"context"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	ce "github.com/cloudevents/sdk-go/protocol/kafka_sarama/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hexeract/hexeract/router"
)

type UserRegistered struct {
	UserID string `json:"user_id"`
	Email  string `json:"email"`
}

func (UserRegistered) MessageType() string { return "users.registered" }

// headersOf turns Watermill metadata into Kafka record headers, as a Kafka
// transport would put them on the wire.
func headersOf(md message.Metadata) map[string][]byte {
	h := make(map[string][]byte, len(md))
	for k, v := range md {
		h[k] = []byte(v)
	}
	return h
}

// TestEnvelopeIsReadByTheCloudEventsSDK checks that the official CloudEvents
// Go SDK, through its Kafka binding (ce_ headers), reads a Hexeract message as
// a valid CloudEvent with the right attributes and data.
func TestEnvelopeIsReadByTheCloudEventsSDK(t *testing.T) {
	at := time.Date(2026, 11, 26, 12, 0, 0, 123456789, time.UTC)
	ctx := router.WithCorrelationID(context.Background(), "conv-1")
	msg, err := router.NewMessage(ctx, UserRegistered{UserID: "u-1", Email: "ada@example.com"},
		router.EncodeOptions{Source: "/billing", Time: at})
	if err != nil {
		t.Fatal(err)
	}
	md := msg.Metadata
	cem := ce.NewMessage(msg.Payload, md.Get(router.KeyContentType), headersOf(md))
	if enc := cem.ReadEncoding(); enc != binding.EncodingBinary {
		t.Fatalf("the SDK sees encoding %v, want binary", enc)
	}
	ev, err := binding.ToEvent(context.Background(), cem)
	if err != nil {
		t.Fatal(err)
	}
	if err := ev.Validate(); err != nil {
		t.Fatalf("not a valid CloudEvent: %v", err)
	}
	if ev.ID() != msg.UUID || ev.Type() != "users.registered" || ev.Source() != "/billing" ||
		ev.SpecVersion() != "1.0" || !ev.Time().Equal(at) || ev.DataContentType() != "application/json" {
		t.Fatalf("SDK read id=%s type=%s source=%s spec=%s time=%s ct=%s", ev.ID(), ev.Type(), ev.Source(), ev.SpecVersion(), ev.Time(), ev.DataContentType())
	}
	var data UserRegistered
	if err := ev.DataAs(&data); err != nil || data.UserID != "u-1" || data.Email != "ada@example.com" {
		t.Fatalf("data = %+v, %v", data, err)
	}
}

// TestCloudEventFromTheSDKIsHandled writes an event with the official SDK's
// Kafka binding and feeds the resulting headers and value, as Watermill
// metadata and payload, to a Hexeract typed handler.
func TestCloudEventFromTheSDKIsHandled(t *testing.T) {
	ev := event.New()
	ev.SetID("evt-from-sdk")
	ev.SetType("users.registered")
	ev.SetSource("/node-service")
	ev.SetTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if err := ev.SetData(event.ApplicationJSON, map[string]string{"user_id": "u-9", "email": "x@example.com"}); err != nil {
		t.Fatal(err)
	}
	var pm sarama.ProducerMessage
	if err := ce.WriteProducerMessage(context.Background(), binding.ToMessage(&ev), &pm); err != nil {
		t.Fatal(err)
	}
	value, err := pm.Value.Encode()
	if err != nil {
		t.Fatal(err)
	}
	wm := message.NewMessage("evt-from-sdk", value)
	for _, h := range pm.Headers {
		wm.Metadata.Set(string(h.Key), string(h.Value))
	}

	var got UserRegistered
	var env router.Envelope
	fn, err := router.NewHandlerFunc[UserRegistered](router.HandlerFunc[UserRegistered](func(ctx context.Context, m UserRegistered) error {
		got = m
		env, _ = router.EnvelopeFrom(ctx)
		return nil
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := fn(wm); err != nil {
		t.Fatalf("handler refused the SDK's event: %v (metadata %v)", err, wm.Metadata)
	}
	if got.UserID != "u-9" || got.Email != "x@example.com" {
		t.Fatalf("decoded %+v", got)
	}
	if env.ID != "evt-from-sdk" || env.Source != "/node-service" || env.SpecVersion != "1.0" || env.Time.Year() != 2026 {
		t.Fatalf("envelope %+v", env)
	}
}
