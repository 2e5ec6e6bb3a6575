package amqp_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/hexeract/hexeract/adapters/amqp"
	"github.com/hexeract/hexeract/router"
)

type userRegistered struct {
	UserID string `json:"user_id"`
}

func (userRegistered) MessageType() string { return "users.registered" }

// TestMarshalerFollowsTheAMQPBinding: on the wire the envelope's ce_
// attributes are cloudEvents_ headers and the content type is the AMQP
// content-type property; decoding gives back the same metadata.
func TestMarshalerFollowsTheAMQPBinding(t *testing.T) {
	ctx := router.WithCorrelationID(context.Background(), "conv-1")
	msg, err := router.NewMessage(ctx, userRegistered{UserID: "u-1"}, router.EncodeOptions{Source: "/users"})
	if err != nil {
		t.Fatal(err)
	}
	msg.Metadata.Set(router.KeyPartitionKey, "u-1")
	p, err := amqp.Marshaler{}.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"cloudEvents_id":           msg.UUID,
		"cloudEvents_type":         "users.registered",
		"cloudEvents_source":       "/users",
		"cloudEvents_specversion":  "1.0",
		"cloudEvents_time":         msg.Metadata.Get(router.KeyTime),
		"cloudEvents_partitionkey": "u-1",
		"correlation_id":           "conv-1",
		"_watermill_message_uuid":  msg.UUID,
	}
	for k, v := range want {
		if p.Headers[k] != v {
			t.Errorf("header %s = %v, want %q", k, p.Headers[k], v)
		}
	}
	for _, k := range []string{"ce_id", "ce_type", "content-type"} {
		if _, ok := p.Headers[k]; ok {
			t.Errorf("header %s is on the wire; the binding has no such header", k)
		}
	}
	if p.ContentType != "application/json" || p.DeliveryMode != amqp091.Persistent {
		t.Errorf("content-type property %q, delivery mode %d", p.ContentType, p.DeliveryMode)
	}

	back, err := amqp.Marshaler{}.Unmarshal(amqp091.Delivery{Headers: p.Headers, ContentType: p.ContentType, Body: p.Body})
	if err != nil {
		t.Fatal(err)
	}
	if back.UUID != msg.UUID || string(back.Payload) != string(msg.Payload) || !maps.Equal(back.Metadata, msg.Metadata) {
		t.Fatalf("round trip:\n got %s %v\nwant %s %v", back.UUID, back.Metadata, msg.UUID, msg.Metadata)
	}
}

// TestMarshalerAcceptsOtherSpellings: the older cloudEvents: prefix, plain
// ce_ headers (Watermill's DefaultMarshaler, or KafkaStyleHeaders), a
// content-type header, non-string header values, and no Watermill UUID
// header (the CloudEvents id is the UUID then).
func TestMarshalerAcceptsOtherSpellings(t *testing.T) {
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	d := amqp091.Delivery{
		Headers: amqp091.Table{
			"cloudEvents:id":          "evt-1",
			"cloudEvents:type":        "users.registered",
			"ce_source":               "/node",
			"cloudEvents_specversion": "1.0",
			"content-type":            "application/json",
			"correlation_id":          []byte("conv-9"),
			"retries":                 int32(3),
			"sent":                    at,
		},
		Body: []byte(`{"user_id":"u-9"}`),
	}
	msg, err := amqp.Marshaler{}.Unmarshal(d)
	if err != nil {
		t.Fatal(err)
	}
	want := message.Metadata{
		"ce_id": "evt-1", "ce_type": "users.registered", "ce_source": "/node", "ce_specversion": "1.0",
		"content-type": "application/json", "correlation_id": "conv-9", "retries": "3", "sent": "2026-11-26T12:00:00Z",
	}
	if msg.UUID != "evt-1" || !maps.Equal(msg.Metadata, want) {
		t.Fatalf("got %s %v\nwant evt-1 %v", msg.UUID, msg.Metadata, want)
	}
	nested, err := (amqp.Marshaler{}).Unmarshal(amqp091.Delivery{Headers: amqp091.Table{"nested": amqp091.Table{"a": []interface{}{int8(1)}}}})
	if err != nil || nested.Metadata.Get("nested") != `{"a":[1]}` {
		t.Fatalf("a table header: %v %v, want its JSON text", nested, err)
	}
}

// TestKafkaStyleHeaders writes ce_ headers and a content-type header, as
// Watermill's DefaultMarshaler does.
func TestKafkaStyleHeaders(t *testing.T) {
	msg, err := router.NewMessage(context.Background(), userRegistered{UserID: "u-1"}, router.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := amqp.Marshaler{KafkaStyleHeaders: true}.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	if p.Headers["ce_type"] != "users.registered" || p.Headers["content-type"] != "application/json" || p.ContentType != "" {
		t.Fatalf("headers %v, content-type property %q", p.Headers, p.ContentType)
	}
	cfg := amqp.Config{URL: "amqp://x/", KafkaStyleHeaders: true}
	if m, ok := cfg.WatermillConfig().Marshaler.(amqp.Marshaler); !ok || !m.KafkaStyleHeaders {
		t.Fatal("WatermillConfig does not use amqp.Marshaler with KafkaStyleHeaders")
	}
}

// TestMarshalerStructuredMode: a message in CloudEvents structured mode
// travels as the AMQP binding's structured mode (the event as body, the
// content-type property application/cloudevents+json, no attribute
// headers) and expands back into the binary-mode message after decoding.
func TestMarshalerStructuredMode(t *testing.T) {
	ctx := router.WithCorrelationID(context.Background(), "conv-s")
	bin, err := router.NewMessage(ctx, userRegistered{UserID: "u-1"}, router.EncodeOptions{Source: "/users"})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := router.ToStructured(bin)
	if err != nil {
		t.Fatal(err)
	}
	p, err := amqp.Marshaler{}.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	if p.ContentType != router.ContentTypeCloudEvents || string(p.Body) != string(msg.Payload) {
		t.Fatalf("content-type property %q body %s", p.ContentType, p.Body)
	}
	for k := range p.Headers {
		if k != "correlation_id" && k != "_watermill_message_uuid" {
			t.Errorf("header %s=%v on a structured message", k, p.Headers[k])
		}
	}
	back, err := amqp.Marshaler{}.Unmarshal(amqp091.Delivery{Headers: p.Headers, ContentType: p.ContentType, Body: p.Body})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := router.ExpandStructured(back)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("ExpandStructured = %v, %v", msgs, err)
	}
	if msgs[0].UUID != bin.UUID || !maps.Equal(msgs[0].Metadata, bin.Metadata) || string(msgs[0].Payload) != string(bin.Payload) {
		t.Fatalf("round trip:\n got %s %v %s\nwant %s %v %s", msgs[0].UUID, msgs[0].Metadata, msgs[0].Payload, bin.UUID, bin.Metadata, bin.Payload)
	}
}
