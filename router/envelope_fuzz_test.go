package router_test

import (
	"context"
	"math"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/router"
)

// fuzzEvent has fields of several JSON kinds for the codec round trip.
type fuzzEvent struct {
	ID     string            `json:"id"`
	N      int64             `json:"n"`
	F      float64           `json:"f"`
	OK     bool              `json:"ok"`
	Tags   []string          `json:"tags"`
	Labels map[string]string `json:"labels"`
}

func (fuzzEvent) MessageType() string { return "fuzz.event" }

// FuzzEnvelope feeds arbitrary metadata values to the envelope decoder
// (router.EnvelopeOf) and checks it never panics, always yields an id, and
// reads ce_time only when it is valid RFC 3339.
func FuzzEnvelope(f *testing.F) {
	f.Add("", "", "", "", "", "")
	f.Add("id-1", "users.registered", "/svc", "1.0", "2026-01-02T03:04:05.123456789Z", "corr")
	f.Add("", "x", "", "0.3", "yesterday", "")
	f.Add("\x00\xff", "E2E GOOD ☃ ;--", "\n", "1.0", "2026-13-45T99:99:99Z", "\xc3")
	f.Add("a", "b", "c", "d", "2026-01-02T03:04:05+25:00", "ce_correlationid")
	f.Fuzz(func(t *testing.T, id, typ, source, spec, at, corr string) {
		msg := message.NewMessage("uuid-fallback", nil)
		for k, v := range map[string]string{
			router.KeyID: id, router.KeyType: typ, router.KeySource: source,
			router.KeySpecVersion: spec, router.KeyTime: at, router.KeyCorrelationID: corr,
			"ce_correlationid": corr,
		} {
			if v != "" {
				msg.Metadata.Set(k, v)
			}
		}
		env := router.EnvelopeOf(msg)
		if env.ID == "" {
			t.Fatalf("envelope without id (ce_id %q)", id)
		}
		if id == "" && env.ID != msg.UUID {
			t.Fatalf("missing ce_id: id %q, want the Watermill UUID", env.ID)
		}
		if env.Type != typ || env.Source != source || env.SpecVersion != spec {
			t.Fatalf("envelope %+v does not reflect the metadata", env)
		}
		if parsed, err := time.Parse(time.RFC3339Nano, at); err == nil {
			if !env.Time.Equal(parsed) {
				t.Fatalf("ce_time %q read as %v", at, env.Time)
			}
		} else if !env.Time.IsZero() {
			t.Fatalf("malformed ce_time %q read as %v", at, env.Time)
		}
		// A message built from inside a handler of this one is correlated
		// with it, whatever its metadata holds.
		out, err := router.NewMessage(router.WithIncoming(context.Background(), msg), fuzzEvent{}, router.EncodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := out.Metadata.Get(router.KeyCausationID); got != env.ID {
			t.Fatalf("causation %q, want %q", got, env.ID)
		}
		if out.Metadata.Get(router.KeyCorrelationID) == "" {
			t.Fatal("no correlation id")
		}
	})
}

// FuzzCodec checks the JSON codec: decoding arbitrary bytes into a typed
// message never panics and fails as a permanent *DecodeError through
// router.Decode; a value that encodes decodes back to the same encoding.
func FuzzCodec(f *testing.F) {
	f.Add([]byte(`{"id":"a","n":1,"f":1.5,"ok":true,"tags":["x"],"labels":{"k":"v"}}`), "a", int64(1), 1.5)
	f.Add([]byte(`{"n":"not a number"}`), "", int64(0), 0.0)
	f.Add([]byte("\xff\xfe\x00"), "\xff", int64(-1), math.Copysign(0, -1))
	f.Add([]byte(`[1,2,3]`), "\u2028", int64(1<<62), 1e308)
	f.Add([]byte(`null`), "", int64(0), 0.0)
	f.Fuzz(func(t *testing.T, data []byte, s string, n int64, x float64) {
		codec := router.JSON{}
		msg := message.NewMessage("fuzz", data)
		msg.Metadata.Set(router.KeyType, fuzzEvent{}.MessageType())
		if _, err := router.Decode[fuzzEvent](msg, codec, fuzzEvent{}.MessageType()); err != nil && !router.IsPermanent(err) {
			t.Fatalf("decode error is not permanent: %v", err)
		}
		in := fuzzEvent{ID: s, N: n, F: x, OK: n%2 == 0, Tags: []string{s}, Labels: map[string]string{s: s}}
		b, err := codec.Marshal(in)
		if err != nil {
			return // NaN and ±Inf are not JSON; Marshal reports it
		}
		var back fuzzEvent
		if err := codec.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s does not decode: %v", b, err)
		}
		// Invalid UTF-8 becomes U+FFFD on the first encoding; from there on
		// the value is stable.
		b2, err := codec.Marshal(back)
		if err != nil {
			t.Fatal(err)
		}
		var again fuzzEvent
		if err := codec.Unmarshal(b2, &again); err != nil || !reflect.DeepEqual(back, again) {
			t.Fatalf("round trip changed %+v into %+v (%v)", back, again, err)
		}
		if utf8.ValidString(s) && back.ID != s {
			t.Fatalf("string %q came back as %q", s, back.ID)
		}
	})
}
