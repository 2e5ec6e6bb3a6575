package router_test

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/router"
)

// TestCorrelationFromCloudEventsExtension: an event written by a CloudEvents
// SDK carries the extension correlationid (ce_correlationid); the envelope
// reads it and a message published while handling it stays in that
// conversation. correlation_id wins when both are present.
func TestCorrelationFromCloudEventsExtension(t *testing.T) {
	in := message.NewMessage("evt-1", []byte(`{}`))
	in.Metadata.Set(router.KeyID, "evt-1")
	in.Metadata.Set(router.KeyCorrelationExt, "conv-ext")
	if got := router.EnvelopeOf(in).CorrelationID; got != "conv-ext" {
		t.Fatalf("EnvelopeOf().CorrelationID = %q, want conv-ext", got)
	}
	out, err := router.NewMessage(router.WithIncoming(context.Background(), in), UserRegistered{UserID: "u"}, router.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c, cause := out.Metadata.Get(router.KeyCorrelationID), out.Metadata.Get(router.KeyCausationID); c != "conv-ext" || cause != "evt-1" {
		t.Fatalf("reply correlation_id=%q causation_id=%q, want conv-ext, evt-1", c, cause)
	}
	in.Metadata.Set(router.KeyCorrelationID, "conv-plain")
	if got := router.CorrelationIDOf(in.Metadata); got != "conv-plain" {
		t.Fatalf("CorrelationIDOf = %q, want correlation_id to win", got)
	}
}
