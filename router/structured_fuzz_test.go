package router_test

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/router"
)

// FuzzExpandStructured feeds arbitrary content types and bodies to the
// structured-mode decoder. It must never panic; it either leaves the
// message alone, refuses it with a permanent *StructuredError, or returns
// events that carry every required attribute (or, in a batch, stand for an
// invalid event that every decoder refuses). A valid event written back
// with ToStructured expands to the same message.
func FuzzExpandStructured(f *testing.F) {
	ct, batch := router.ContentTypeCloudEvents, router.ContentTypeCloudEventsBatch
	f.Add(ct, []byte(`{"specversion":"1.0","id":"e","source":"/s","type":"t","data":{"a":1}}`))
	f.Add(ct+"; charset=utf-8", []byte(`{"specversion":"1.0","id":"e","source":"/s","type":"t","datacontenttype":"text/plain","data":"hi","x":3,"y":true}`))
	f.Add("APPLICATION/CLOUDEVENTS+JSON", []byte(`{"specversion":"1.0","id":"e","source":"/s","type":"t","data_base64":"AAEC"}`))
	f.Add(ct, []byte(`{"specversion":"0.3","id":"e"}`))
	f.Add(ct, []byte(`{"id":"e","data":{},"data_base64":"AA=="}`))
	f.Add(ct, []byte(`[1]`))
	f.Add(ct, []byte(`null`))
	f.Add(batch, []byte(`[{"specversion":"1.0","id":"a","source":"/s","type":"t"},{"id":"b"},7,null]`))
	f.Add(batch, []byte(`[]`))
	f.Add(batch, []byte(`{}`))
	f.Add("", []byte(`{"data":{"x":1},"datacontenttype":"application/json","id":"d","pubsubname":"p","source":"s","specversion":"1.0","time":"2026-01-01T00:00:00Z","topic":"t","traceid":"00-a-b-01","traceparent":"00-a-b-01","tracestate":"","type":"t"}`))
	f.Add("text/plain", []byte(`{"specversion":"1.0"}`))
	f.Add(ct, []byte(`{"specversion":"1.0","id":"e","source":"/s","type":"t","correlationid":"c","causationid":"k","partitionkey":"p","time":"2026-01-01T00:00:00.5+02:00"}`))
	f.Add(ct, []byte("{\"specversion\":\"1.0\",\"id\":\"\xff\",\"source\":\"/s\",\"type\":\"t\",\"data\":\"\\ud800\"}"))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		msg := message.NewMessage("", body)
		if contentType != "" {
			msg.Metadata.Set(router.KeyContentType, contentType)
		}
		msgs, err := router.ExpandStructured(msg)
		if err != nil {
			var serr *router.StructuredError
			if msgs != nil || !errors.As(err, &serr) || !router.IsPermanent(err) || !strings.Contains(err.Error(), "CloudEvents structured mode") {
				t.Fatalf("error %v (%T) with %d messages", err, err, len(msgs))
			}
			return
		}
		if msgs == nil {
			return
		}
		for _, m := range msgs {
			md := m.Metadata
			if strings.HasPrefix(md.Get(router.KeyContentType), router.ContentTypeCloudEvents) {
				// An invalid event of a batch, refused on its own, or an
				// event whose data is an event (datacontenttype
				// application/cloudevents+json), read in turn.
				var serr *router.StructuredError
				if _, err := router.ExpandStructured(m); err != nil && !errors.As(err, &serr) {
					t.Fatalf("event %s: %v", m.Payload, err)
				}
				continue
			}
			if m.UUID == "" || md.Get(router.KeyID) != m.UUID || md.Get(router.KeyType) == "" || md.Get(router.KeySource) == "" ||
				md.Get(router.KeySpecVersion) != router.SpecVersion || md.Get(router.KeyContentType) == "" {
				t.Fatalf("event without its attributes: uuid %q metadata %v", m.UUID, md)
			}
			s, err := router.ToStructured(m)
			if err != nil {
				t.Fatalf("ToStructured of an expanded event: %v", err)
			}
			back, err := router.ExpandStructured(s)
			if err != nil || len(back) != 1 {
				t.Fatalf("%s does not expand again: %v", s.Payload, err)
			}
			if back[0].UUID != m.UUID || string(back[0].Payload) != string(m.Payload) || !maps.Equal(back[0].Metadata, md) {
				t.Fatalf("round trip through %s\n got %q %v %q\nwant %q %v %q", s.Payload, back[0].UUID, back[0].Metadata, back[0].Payload, m.UUID, md, m.Payload)
			}
		}
	})
}
