package router_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/hexeract/hexeract/router"
)

// structured returns a message carrying body with the given content type
// and extra transport metadata, as a transport would deliver it.
func structured(ct, body string, md ...string) *message.Message {
	msg := message.NewMessage("", []byte(body))
	if ct != "" {
		msg.Metadata.Set(router.KeyContentType, ct)
	}
	for i := 0; i+1 < len(md); i += 2 {
		msg.Metadata.Set(md[i], md[i+1])
	}
	return msg
}

type ctxKey struct{}

// TestExpandStructuredMapsTheEvent: every attribute lands under Hexeract's
// key, the data becomes the payload, the transport's other metadata and the
// context stay, and the transport's own ce_ keys give way to the event.
func TestExpandStructuredMapsTheEvent(t *testing.T) {
	body := `{
		"specversion": "1.0", "id": "evt-1", "source": "/shop", "type": "users.registered",
		"time": "2026-01-02T03:04:05.123Z", "subject": "u-1", "dataschema": "https://example.com/s.json",
		"datacontenttype": "application/json",
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "k=v",
		"correlationid": "conv-1", "causationid": "evt-0", "partitionkey": "u-1",
		"pubsubname": "pubsub", "retries": 3, "urgent": true, "nothing": null,
		"data": {"user_id": "u-1", "email": "a@example.com"}
	}`
	msg := structured("Application/CloudEvents+JSON; charset=utf-8", body,
		"x-tenant", "t-1", router.KeyType, "stale.type", router.KeyCorrelationExt, "stale")
	ctx := context.WithValue(context.Background(), ctxKey{}, "kept")
	msg.SetContext(ctx)

	msgs, err := router.ExpandStructured(msg)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("ExpandStructured = %d messages, %v", len(msgs), err)
	}
	got := msgs[0]
	want := message.Metadata{
		router.KeyID: "evt-1", router.KeyType: "users.registered", router.KeySource: "/shop",
		router.KeySpecVersion: "1.0", router.KeyTime: "2026-01-02T03:04:05.123Z",
		router.KeySubject: "u-1", router.KeyDataSchema: "https://example.com/s.json",
		router.KeyContentType: "application/json",
		router.KeyTraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", router.KeyTraceState: "k=v",
		router.KeyCorrelationID: "conv-1", router.KeyCausationID: "evt-0", router.KeyPartitionKey: "u-1",
		"ce_pubsubname": "pubsub", "ce_retries": "3", "ce_urgent": "true",
		"x-tenant": "t-1",
	}
	if !maps.Equal(got.Metadata, want) {
		t.Errorf("metadata\n got %v\nwant %v", got.Metadata, want)
	}
	if got.UUID != "evt-1" {
		t.Errorf("UUID %q, want the event id", got.UUID)
	}
	if got.Context().Value(ctxKey{}) != "kept" {
		t.Error("the context of the original message is lost")
	}
	var u UserRegistered
	if err := json.Unmarshal(got.Payload, &u); err != nil || u != (UserRegistered{UserID: "u-1", Email: "a@example.com"}) {
		t.Errorf("payload %s: %+v %v", got.Payload, u, err)
	}
	if msg.Metadata.Get(router.KeyType) != "stale.type" {
		t.Error("ExpandStructured changed the original message")
	}
}

// TestExpandStructuredData: data as JSON, as text, as base64, absent.
func TestExpandStructuredData(t *testing.T) {
	const head = `"specversion":"1.0","id":"e","source":"/s","type":"t"`
	for _, tc := range []struct {
		name, members, wantCT, wantPayload string
	}{
		{"json object, default content type", `"data":{"a":1}`, "application/json", `{"a":1}`},
		{"json string with a JSON content type stays JSON", `"datacontenttype":"application/json","data":"hi"`, "application/json", `"hi"`},
		{"+json content type", `"datacontenttype":"application/vnd.x+json","data":[1,2]`, "application/vnd.x+json", `[1,2]`},
		{"text", `"datacontenttype":"text/plain","data":"héllo\n"`, "text/plain", "héllo\n"},
		{"xml as a string", `"datacontenttype":"application/xml","data":"<a/>"`, "application/xml", "<a/>"},
		{"base64", `"datacontenttype":"application/octet-stream","data_base64":"AAEC/w=="`, "application/octet-stream", "\x00\x01\x02\xff"},
		{"no data", `"subject":"x"`, "application/json", ""},
		{"null data", `"data":null`, "application/json", ""},
		{"null data_base64 beside data", `"data":{"a":1},"data_base64":null`, "application/json", `{"a":1}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs, err := router.ExpandStructured(structured(router.ContentTypeCloudEvents, "{"+head+","+tc.members+"}"))
			if err != nil || len(msgs) != 1 {
				t.Fatalf("%d messages, %v", len(msgs), err)
			}
			if ct := msgs[0].Metadata.Get(router.KeyContentType); ct != tc.wantCT {
				t.Errorf("content-type %q, want %q", ct, tc.wantCT)
			}
			if string(msgs[0].Payload) != tc.wantPayload {
				t.Errorf("payload %q, want %q", msgs[0].Payload, tc.wantPayload)
			}
		})
	}
}

// TestExpandStructuredLeavesOtherMessagesAlone: binary mode, plain JSON and
// a binary-mode message whose data happens to mention specversion are not
// structured, and looking costs a binary-mode message no allocation.
func TestExpandStructuredLeavesOtherMessagesAlone(t *testing.T) {
	bin, err := router.NewMessage(context.Background(), UserRegistered{UserID: "u"}, router.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dataWithSpec := structured("application/json", `{"specversion":"1.0","id":"x","source":"/s","type":"t"}`,
		router.KeyType, "users.registered", router.KeySpecVersion, "1.0")
	for name, msg := range map[string]*message.Message{
		"binary mode":                       bin,
		"json content type, no envelope":    structured("application/json", `{"user_id":"u"}`),
		"text":                              structured("text/plain", "hello"),
		"binary event mentioning spec":      dataWithSpec,
		"no content type, nested spec only": structured("", `{"data":{"specversion":"1.0"}}`),
		"cloudevents prefix, other format":  structured("application/cloudevents+xml", `<x/>`),
		"empty":                             structured("", ""),
	} {
		msgs, err := router.ExpandStructured(msg)
		if msgs != nil || err != nil {
			t.Errorf("%s: ExpandStructured = %v, %v; want nil, nil", name, msgs, err)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = router.ExpandStructured(bin) }); n != 0 {
		t.Errorf("ExpandStructured of a binary-mode message allocates %v times", n)
	}
}

// daprEnvelope is the CloudEvent Dapr's pub/sub wraps around a published
// payload (Dapr 1.x: data, datacontenttype, id, pubsubname, source,
// specversion, time, topic, traceid, traceparent, tracestate, type).
func daprEnvelope(id, typ, traceparent string, data any) string {
	b, err := json.Marshal(map[string]any{
		"data":            data,
		"datacontenttype": "application/json",
		"id":              id,
		"pubsubname":      "pubsub",
		"source":          "checkout",
		"specversion":     "1.0",
		"time":            "2026-03-04T05:06:07Z",
		"topic":           "orders",
		"traceid":         traceparent,
		"traceparent":     traceparent,
		"tracestate":      "",
		"type":            typ,
	})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestExpandStructuredDapr: Dapr writes its envelope without a structured
// content type (none on Kafka, text/plain on RabbitMQ); the body says what
// it is.
func TestExpandStructuredDapr(t *testing.T) {
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	body := daprEnvelope("dapr-1", "users.registered", tp, map[string]string{"user_id": "u-7"})
	for _, ct := range []string{"", "text/plain"} {
		msgs, err := router.ExpandStructured(structured(ct, body))
		if err != nil || len(msgs) != 1 {
			t.Fatalf("content type %q: %d messages, %v", ct, len(msgs), err)
		}
		md := msgs[0].Metadata
		if msgs[0].UUID != "dapr-1" || md.Get(router.KeyType) != "users.registered" || md.Get(router.KeySource) != "checkout" ||
			md.Get(router.KeyTraceParent) != tp || md.Get("ce_traceid") != tp || md.Get("ce_pubsubname") != "pubsub" ||
			md.Get("ce_topic") != "orders" || md.Get(router.KeyContentType) != "application/json" || string(msgs[0].Payload) != `{"user_id":"u-7"}` {
			t.Errorf("content type %q: %s %v %s", ct, msgs[0].UUID, md, msgs[0].Payload)
		}
	}
	// Recognised from the body, a wrong event is an error that says so.
	_, err := router.ExpandStructured(structured("text/plain", `{"specversion":"1.0","id":"d-2","source":"x"}`))
	var serr *router.StructuredError
	if !errors.As(err, &serr) || !serr.FromBody || serr.EventID != "d-2" ||
		!strings.Contains(err.Error(), "recognised from the body") || !strings.Contains(err.Error(), "missing required attribute type") {
		t.Fatalf("err = %v", err)
	}
}

// TestExpandStructuredRefusesInvalidEvents: each wrong shape is a permanent
// *StructuredError naming structured mode, the content type, the event when
// its id is readable, and what is wrong.
func TestExpandStructuredRefusesInvalidEvents(t *testing.T) {
	const ok = `"specversion":"1.0","source":"/s","type":"t"`
	for _, tc := range []struct {
		name, ct, body, wantID, wantReason string
	}{
		{"not json", router.ContentTypeCloudEvents, `{"id":`, "", "the body is not JSON"},
		{"array", router.ContentTypeCloudEvents, `[{"id":"a"}]`, "", "must be a JSON object, got a JSON array"},
		{"string", router.ContentTypeCloudEvents, `"x"`, "", "must be a JSON object, got a JSON string"},
		{"null", router.ContentTypeCloudEvents, `null`, "", "got null"},
		{"missing id", router.ContentTypeCloudEvents, `{` + ok + `}`, "", "missing required attribute id"},
		{"id not a string", router.ContentTypeCloudEvents, `{"id":7,` + ok + `}`, "", "attribute id must be a JSON string, got 7"},
		{"missing type", router.ContentTypeCloudEvents, `{"id":"e1","specversion":"1.0","source":"/s"}`, "e1", "missing required attribute type"},
		{"empty source", router.ContentTypeCloudEvents, `{"id":"e1","specversion":"1.0","source":"","type":"t"}`, "e1", "missing required attribute source"},
		{"missing specversion", router.ContentTypeCloudEvents, `{"id":"e1","source":"/s","type":"t"}`, "e1", "missing required attribute specversion"},
		{"specversion 0.3", router.ContentTypeCloudEvents, `{"id":"e1","specversion":"0.3","source":"/s","type":"t"}`, "e1", `unsupported specversion "0.3"`},
		{"both data", router.ContentTypeCloudEvents, `{"id":"e1",` + ok + `,"data":{},"data_base64":"AA=="}`, "e1", "both data and data_base64"},
		{"bad base64", router.ContentTypeCloudEvents, `{"id":"e1",` + ok + `,"data_base64":"%%%"}`, "e1", "data_base64 is not valid base64"},
		{"bad time", router.ContentTypeCloudEvents, `{"id":"e1",` + ok + `,"time":"yesterday"}`, "e1", `attribute time "yesterday" is not an RFC 3339 timestamp`},
		{"subject not a string", router.ContentTypeCloudEvents, `{"id":"e1",` + ok + `,"subject":1}`, "e1", "attribute subject must be a JSON string"},
		{"bad attribute name", router.ContentTypeCloudEvents, `{"id":"e1",` + ok + `,"Trace-Id":"x"}`, "e1", `attribute name "Trace-Id" is not allowed`},
		{"object extension", router.ContentTypeCloudEvents, `{"id":"e1",` + ok + `,"meta":{"a":1}}`, "e1", "attribute meta is a JSON object or array"},
		{"empty batch", router.ContentTypeCloudEventsBatch, `[]`, "", "the batch is empty"},
		{"batch not an array", router.ContentTypeCloudEventsBatch, `{"id":"e1"}`, "", "a batch must be a JSON array of events, got a JSON object"},
		{"batch not json", router.ContentTypeCloudEventsBatch, `[{`, "", "the body is not JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs, err := router.ExpandStructured(structured(tc.ct+"; charset=utf-8", tc.body))
			var serr *router.StructuredError
			if msgs != nil || !errors.As(err, &serr) {
				t.Fatalf("ExpandStructured = %v, %v; want a *StructuredError", msgs, err)
			}
			text := err.Error()
			for _, part := range []string{"CloudEvents structured mode", tc.ct, tc.wantReason} {
				if !strings.Contains(text, part) {
					t.Errorf("error %q does not contain %q", text, part)
				}
			}
			if serr.EventID != tc.wantID || !router.IsPermanent(err) {
				t.Errorf("EventID %q (want %q), permanent %v", serr.EventID, tc.wantID, router.IsPermanent(err))
			}
			if tc.wantID != "" && !strings.Contains(text, `event "`+tc.wantID+`"`) {
				t.Errorf("error %q does not name the event", text)
			}
		})
	}
}

// TestExpandStructuredBatch: a batch of three gives three messages in
// order; an invalid event in the middle becomes a message of its own that
// every decoder refuses with the reason, and does not hold back the others.
func TestExpandStructuredBatch(t *testing.T) {
	ev := func(id, user string) string {
		return `{"specversion":"1.0","id":"` + id + `","source":"/s","type":"users.registered","data":{"user_id":"` + user + `"}}`
	}
	msg := structured(router.ContentTypeCloudEventsBatch, "["+ev("b-1", "u-1")+","+ev("b-2", "u-2")+","+ev("b-3", "u-3")+"]", "x-tenant", "t-1")
	msgs, err := router.ExpandStructured(msg)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("%d messages, %v", len(msgs), err)
	}
	for i, m := range msgs {
		u, err := router.Decode[UserRegistered](m, router.JSON{}, "users.registered")
		wantID := "b-" + string(rune('1'+i))
		if err != nil || m.UUID != wantID || u.UserID != "u-"+string(rune('1'+i)) || m.Metadata.Get("x-tenant") != "t-1" {
			t.Errorf("event %d: uuid %q user %+v metadata %v, %v", i, m.UUID, u, m.Metadata, err)
		}
	}

	bad := `{"specversion":"1.0","id":"b-bad","source":"/s","type":"users.registered","data":{},"data_base64":"AA=="}`
	msgs, err = router.ExpandStructured(structured(router.ContentTypeCloudEventsBatch, "["+ev("b-1", "u-1")+","+bad+",42,"+ev("b-3", "u-3")+"]"))
	if err != nil || len(msgs) != 4 {
		t.Fatalf("%d messages, %v", len(msgs), err)
	}
	for _, i := range []int{0, 3} {
		if _, err := router.Decode[UserRegistered](msgs[i], router.JSON{}, "users.registered"); err != nil {
			t.Errorf("valid event %d refused: %v", i, err)
		}
	}
	invalid := msgs[1]
	if invalid.UUID != "b-bad" || invalid.Metadata.Get(router.KeyID) != "b-bad" || invalid.Metadata.Get(router.KeyType) != "users.registered" ||
		invalid.Metadata.Get(router.KeyContentType) != router.ContentTypeCloudEvents || string(invalid.Payload) != bad {
		t.Errorf("invalid event message: %q %v %s", invalid.UUID, invalid.Metadata, invalid.Payload)
	}
	_, err = router.Decode[UserRegistered](invalid, router.JSON{}, "users.registered")
	var serr *router.StructuredError
	var de *router.DecodeError
	if !errors.As(err, &de) || !errors.As(err, &serr) || de.MessageID != "b-bad" || !strings.Contains(err.Error(), "both data and data_base64") {
		t.Errorf("Decode of the invalid event: %v", err)
	}
	if _, err := router.ExpandStructured(invalid); !errors.As(err, &serr) {
		t.Errorf("ExpandStructured of the invalid event: %v", err)
	}
	if _, err := router.ExpandStructured(msgs[2]); !errors.As(err, &serr) || !strings.Contains(err.Error(), "got a JSON number") || msgs[2].UUID != "" {
		t.Errorf("the number in the batch: uuid %q, %v", msgs[2].UUID, err)
	}
}

// TestDecodeStructured: a typed handler gets the event's data, not a zero
// value, even when the transport also carries a type header; a batch and
// an invalid event are permanent DecodeErrors.
func TestDecodeStructured(t *testing.T) {
	body := `{"specversion":"1.0","id":"s-1","source":"/node","type":"users.registered","data":{"user_id":"u-1","email":"e@x"}}`
	msg := structured(router.ContentTypeCloudEvents, body, router.KeyType, "users.registered")
	u, err := router.Decode[UserRegistered](msg, router.JSON{}, "users.registered")
	if err != nil || u != (UserRegistered{UserID: "u-1", Email: "e@x"}) {
		t.Fatalf("Decode = %+v, %v", u, err)
	}
	_, err = router.Decode[UserRegistered](msg, router.JSON{}, "orders.placed")
	var tm *router.TypeMismatchError
	var de *router.DecodeError
	if !errors.As(err, &tm) || !errors.As(err, &de) || de.MessageID != "s-1" {
		t.Errorf("wrong type: %v", err)
	}
	_, err = router.Decode[UserRegistered](structured(router.ContentTypeCloudEventsBatch, "["+body+"]"), router.JSON{}, "users.registered")
	if !errors.Is(err, router.ErrStructuredBatch) || !router.IsPermanent(err) || !strings.Contains(err.Error(), "hexeract App") {
		t.Errorf("batch: %v", err)
	}
	_, err = router.Decode[UserRegistered](structured(router.ContentTypeCloudEvents, `{"id":"s-2"}`), router.JSON{}, "users.registered")
	var serr *router.StructuredError
	if !errors.As(err, &serr) || !errors.As(err, &de) || de.MessageID != "s-2" || !router.IsPermanent(err) {
		t.Errorf("invalid event: %v", err)
	}
	// Dapr's envelope without a content type: read, not "missing ce_type".
	dapr := structured("", daprEnvelope("d-1", "users.registered", "", map[string]string{"user_id": "u-2"}))
	if u, err := router.Decode[UserRegistered](dapr, router.JSON{}, "users.registered"); err != nil || u.UserID != "u-2" {
		t.Errorf("Dapr envelope: %+v, %v", u, err)
	}
	// A JSON body without type that is no event keeps the old error.
	_, err = router.Decode[UserRegistered](structured("", `{"user_id":"u","meta":{"specversion":"1.0"}}`), router.JSON{}, "users.registered")
	if !errors.Is(err, router.ErrMissingType) {
		t.Errorf("no type: %v", err)
	}
}

// TestHandlerEnvelopeOfAStructuredEvent: the handler's envelope is the
// event's, and what it publishes is correlated with the event.
func TestHandlerEnvelopeOfAStructuredEvent(t *testing.T) {
	body := `{"specversion":"1.0","id":"s-9","source":"/node","type":"users.registered","time":"2026-01-02T03:04:05Z",
		"correlationid":"conv-9","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","data":{"user_id":"u-9"}}`
	msg := structured("application/cloudevents+json", body)
	var env router.Envelope
	var reply *message.Message
	fn, err := router.NewHandlerFunc(router.HandlerFunc[UserRegistered](func(ctx context.Context, u UserRegistered) error {
		env, _ = router.EnvelopeFrom(ctx)
		var err error
		reply, err = router.NewMessage(ctx, OrderPlaced{OrderID: u.UserID}, router.EncodeOptions{})
		return err
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := fn(msg); err != nil {
		t.Fatal(err)
	}
	if env.ID != "s-9" || env.Source != "/node" || env.CorrelationID != "conv-9" || !env.Time.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) ||
		env.ContentType != "application/json" || env.Metadata.Get(router.KeyTraceParent) == "" {
		t.Errorf("envelope %+v", env)
	}
	if reply.Metadata.Get(router.KeyCorrelationID) != "conv-9" || reply.Metadata.Get(router.KeyCausationID) != "s-9" {
		t.Errorf("reply metadata %v", reply.Metadata)
	}
}

// TestToStructuredIsReadByTheCloudEventsSDK: the official Go SDK parses
// Hexeract's structured output as a valid event with every attribute, and
// ExpandStructured gives back the binary-mode message.
func TestToStructuredIsReadByTheCloudEventsSDK(t *testing.T) {
	ctx := router.WithCorrelationID(context.Background(), "conv-1")
	at := time.Date(2026, 11, 26, 12, 0, 0, 123456789, time.UTC)
	bin, err := router.NewMessage(ctx, keyedOrder{OrderID: "o-1"}, router.EncodeOptions{Source: "/billing", Time: at})
	if err != nil {
		t.Fatal(err)
	}
	bin.Metadata.Set(router.KeyTraceParent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	bin.Metadata.Set("x-tenant", "t-1")
	s, err := router.ToStructured(bin)
	if err != nil {
		t.Fatal(err)
	}
	if s.UUID != bin.UUID || s.Metadata.Get(router.KeyContentType) != router.ContentTypeCloudEvents ||
		s.Metadata.Get(router.KeyPartitionKey) != "o-1" || s.Metadata.Get(router.KeyCorrelationID) != "conv-1" || s.Metadata.Get("x-tenant") != "t-1" ||
		s.Metadata.Get(router.KeyType) != "" || s.Context() != bin.Context() {
		t.Errorf("structured message %s %v", s.UUID, s.Metadata)
	}
	var ev event.Event
	if err := json.Unmarshal(s.Payload, &ev); err != nil {
		t.Fatalf("the SDK cannot read %s: %v", s.Payload, err)
	}
	if err := ev.Validate(); err != nil {
		t.Fatal(err)
	}
	if ev.ID() != bin.UUID || ev.Type() != "orders.placed" || ev.Source() != "/billing" || !ev.Time().Equal(at) ||
		ev.DataContentType() != "application/json" || ev.Extensions()["correlationid"] != "conv-1" ||
		ev.Extensions()["partitionkey"] != "o-1" || ev.Extensions()["traceparent"] == nil {
		t.Errorf("SDK read %s", ev)
	}
	var o keyedOrder
	if err := ev.DataAs(&o); err != nil || o.OrderID != "o-1" {
		t.Errorf("data %+v, %v", o, err)
	}

	back, err := router.ExpandStructured(s)
	if err != nil || len(back) != 1 {
		t.Fatalf("%v, %v", back, err)
	}
	if !maps.Equal(back[0].Metadata, bin.Metadata) || string(back[0].Payload) != string(bin.Payload) || back[0].UUID != bin.UUID {
		t.Errorf("round trip\n got %v %s\nwant %v %s", back[0].Metadata, back[0].Payload, bin.Metadata, bin.Payload)
	}

	if again, err := router.ToStructured(s); err != nil || again != s {
		t.Errorf("ToStructured of a structured message: %v, %v", again, err)
	}
	if _, err := router.ToStructured(message.NewMessage("x", []byte("{}"))); err == nil || !strings.Contains(err.Error(), "ce_type") {
		t.Errorf("a message that is no event: %v", err)
	}
}

// TestToStructuredBinaryData: a payload that is not JSON travels as
// data_base64 and comes back byte for byte.
func TestToStructuredBinaryData(t *testing.T) {
	bin, err := router.NewMessage(context.Background(), OrderPlaced{}, router.EncodeOptions{Codec: rawCodec{}})
	if err != nil {
		t.Fatal(err)
	}
	bin.Payload = []byte{0, 1, 2, 0xff}
	s, err := router.ToStructured(bin)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(s.Payload), `"data_base64":"AAEC/w=="`) || !strings.Contains(string(s.Payload), `"datacontenttype":"application/octet-stream"`) {
		t.Errorf("body %s", s.Payload)
	}
	back, err := router.ExpandStructured(s)
	if err != nil || string(back[0].Payload) != "\x00\x01\x02\xff" || back[0].Metadata.Get(router.KeyContentType) != "application/octet-stream" {
		t.Errorf("back %v, %v", back, err)
	}
}

// TestEncodeOptionsStructured: NewMessage writes structured mode on request.
func TestEncodeOptionsStructured(t *testing.T) {
	msg, err := router.NewMessage(context.Background(), OrderPlaced{OrderID: "o-2"}, router.EncodeOptions{Structured: true, ID: "id-2"})
	if err != nil {
		t.Fatal(err)
	}
	o, err := router.Decode[OrderPlaced](msg, router.JSON{}, "orders.placed")
	if err != nil || o.OrderID != "o-2" || msg.UUID != "id-2" || msg.Metadata.Get(router.KeyContentType) != router.ContentTypeCloudEvents {
		t.Fatalf("%+v %v %v", o, msg.Metadata, err)
	}
}

type keyedOrder struct {
	OrderID string `json:"order_id"`
}

func (keyedOrder) MessageType() string   { return "orders.placed" }
func (k keyedOrder) OrderingKey() string { return k.OrderID }

// rawCodec passes []byte payloads through, content type octet-stream.
type rawCodec struct{}

func (rawCodec) Marshal(any) ([]byte, error) { return []byte{}, nil }
func (rawCodec) Unmarshal([]byte, any) error { return nil }
func (rawCodec) ContentType() string         { return "application/octet-stream" }
