package router_test

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/adapters/gochannel"
	"github.com/hexeract/hexeract/router"
)

type empty struct{}

func (empty) MessageType() string { return "tests.empty" }

// TestStrictJSON: what StrictJSON refuses, with the field or the problem
// named, and what it accepts.
func TestStrictJSON(t *testing.T) {
	codec := router.StrictJSON{}
	for _, tc := range []struct{ name, data, want string }{
		{"unknown field", `{"user_id":"u","foo":1}`, `json: unknown field "foo"`},
		{"another message type", `{"order_id":"o-1","amount_cents":5}`, `json: unknown field "order_id"`},
		{"empty object", ` { } `, "json: object with no field of *router_test.UserRegistered"},
		{"null", ` null `, "json: null where a value was expected"},
		{"trailing data", `{"user_id":"u"} {"user_id":"v"}`, "json: data after the top-level value"},
		{"trailing garbage", `{"user_id":"u"}x`, "json: data after the top-level value (at byte 15)"},
		{"wrong type", `{"user_id":5}`, "cannot unmarshal number"},
		{"empty", ``, "json: empty payload"},
	} {
		var u UserRegistered
		if err := codec.Unmarshal([]byte(tc.data), &u); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error containing %q", tc.name, err, tc.want)
		}
	}
	var u UserRegistered
	if err := codec.Unmarshal([]byte(" {\"user_id\":\"u\"}\n"), &u); err != nil || u.UserID != "u" {
		t.Errorf("valid: %+v %v", u, err)
	}
	var e empty
	if err := codec.Unmarshal([]byte(`{}`), &e); err != nil {
		t.Errorf("{} for a struct without fields: %v", err)
	}
	var m map[string]int
	if err := codec.Unmarshal([]byte(`{}`), &m); err != nil {
		t.Errorf("{} for a map: %v", err)
	}
	// The lenient default accepts all of it silently.
	if err := (router.JSON{}).Unmarshal([]byte(`{"order_id":"o-1"}`), &u); err != nil {
		t.Errorf("JSON refused an unknown field: %v", err)
	}
}

// strictUser asks for strict decoding whatever the codec.
type strictUser struct {
	UserID string `json:"user_id"`
}

func (strictUser) MessageType() string  { return "users.registered" }
func (strictUser) StrictDecoding() bool { return true }

// lenientUser says no to strict decoding explicitly.
type lenientUser struct {
	UserID string `json:"user_id"`
}

func (lenientUser) MessageType() string  { return "users.registered" }
func (lenientUser) StrictDecoding() bool { return false }

// TestStrictDecoderPerMessageType: a type that implements StrictDecoder
// gets the strict codec on an App-wide lenient one; the error is a
// permanent DecodeError naming the field.
func TestStrictDecoderPerMessageType(t *testing.T) {
	msg := message.NewMessage("m-1", []byte(`{"user_id":"u","foo":1}`))
	msg.Metadata.Set(router.KeyType, "users.registered")

	strict, err := router.NewHandlerFunc(router.HandlerFunc[strictUser](func(context.Context, strictUser) error { return nil }), router.JSON{})
	if err != nil {
		t.Fatal(err)
	}
	err = strict(msg)
	var de *router.DecodeError
	if !errors.As(err, &de) || !router.IsPermanent(err) || !strings.Contains(err.Error(), `json: unknown field "foo"`) || de.MessageID != "m-1" {
		t.Errorf("strict type: %v", err)
	}

	var got lenientUser
	lenient, err := router.NewHandlerFunc(router.HandlerFunc[lenientUser](func(_ context.Context, u lenientUser) error { got = u; return nil }), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := lenient(msg); err != nil || got.UserID != "u" {
		t.Errorf("lenient type: %+v, %v", got, err)
	}

	// A structured event whose data has an unknown field: refused the same way.
	body := `{"specversion":"1.0","id":"s-1","source":"/s","type":"users.registered","data":{"user_id":"u","bar":2}}`
	err = strict(structured(router.ContentTypeCloudEvents, body))
	if !errors.As(err, &de) || !strings.Contains(err.Error(), `json: unknown field "bar"`) || de.MessageID != "s-1" {
		t.Errorf("strict type, structured event: %v", err)
	}

	// A codec without a strict form is refused when the handler is made, not per message.
	if _, err := router.NewHandlerFunc(router.HandlerFunc[strictUser](func(context.Context, strictUser) error { return nil }), rawCodec{}); err == nil ||
		!strings.Contains(err.Error(), "router_test.strictUser asks for strict decoding") || !strings.Contains(err.Error(), "router_test.rawCodec") {
		t.Errorf("codec without strict form: %v", err)
	}
}

// TestStructuredPublisher: the selected events go out in structured mode;
// other messages, non-events and structured messages go out unchanged, and
// the caller's slice is not modified.
func TestStructuredPublisher(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ps := gochannel.New(gochannel.Config{Persistent: true}, nil)
	pub := router.StructuredPublisher(ps, func(topic string, _ *message.Message) bool { return topic != "binary" })
	ev, err := router.NewMessage(context.Background(), OrderPlaced{OrderID: "o-1"}, router.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	plain := message.NewMessage("p-1", []byte("no envelope"))
	already, err := router.NewMessage(context.Background(), OrderPlaced{OrderID: "o-2"}, router.EncodeOptions{Structured: true})
	if err != nil {
		t.Fatal(err)
	}
	msgs := []*message.Message{ev, plain, already}
	if err := pub.Publish("orders", msgs...); err != nil {
		t.Fatal(err)
	}
	if msgs[0] != ev || ev.Metadata.Get(router.KeyType) != "orders.placed" {
		t.Error("Publish changed the caller's slice or message")
	}
	if err := pub.Publish("binary", ev); err != nil {
		t.Fatal(err)
	}
	if err := router.StructuredPublisher(ps, nil).Publish("all", ev); err != nil {
		t.Fatal(err)
	}
	receive := func(topic string, n int) []*message.Message {
		t.Helper()
		ch, err := ps.Subscribe(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		var out []*message.Message
		for len(out) < n {
			select {
			case m := <-ch:
				m.Ack()
				out = append(out, m)
			case <-ctx.Done():
				t.Fatalf("%s: got %d of %d messages", topic, len(out), n)
			}
		}
		return out
	}
	same := func(a, b *message.Message) bool {
		return a.UUID == b.UUID && string(a.Payload) == string(b.Payload) && maps.Equal(a.Metadata, b.Metadata)
	}
	byID := map[string]*message.Message{}
	for _, m := range receive("orders", 3) {
		byID[m.UUID] = m
	}
	if got := byID[ev.UUID]; got == nil || got.Metadata.Get(router.KeyContentType) != router.ContentTypeCloudEvents {
		t.Errorf("event not structured: %v", got)
	}
	if !same(byID[plain.UUID], plain) || !same(byID[already.UUID], already) {
		t.Errorf("changed: %v %v", byID[plain.UUID], byID[already.UUID])
	}
	if got := receive("binary", 1)[0]; !same(got, ev) {
		t.Errorf("when=false changed the event: %v", got.Metadata)
	}
	if got := receive("all", 1)[0]; got.Metadata.Get(router.KeyContentType) != router.ContentTypeCloudEvents {
		t.Errorf("nil when: %v", got.Metadata)
	}
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ps.Publish("orders", ev); err == nil {
		t.Error("Close did not close the wrapped publisher")
	}
}
