package middleware_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
)

// TestDeadLetterUndecodable: a message its transport could not unmarshal
// (router.KeyTransportError) is dead-lettered at once with an
// UnmarshalError fault naming the cause, the handler is never called with
// it, retries are skipped even when ShouldDeadLetter refuses every error,
// and the next message is handled.
func TestDeadLetterUndecodable(t *testing.T) {
	ps := newPubSub(t)
	topic := topicName("undecodable")
	dlq := subscribe(t, ps, topic+".dlq")
	retry := must(middleware.Retry(middleware.RetryPolicy{MaxAttempts: 5, InitialInterval: 5 * time.Millisecond}))
	dead := must(middleware.DeadLetter(ps, middleware.DeadLetterOptions{ShouldDeadLetter: func(error) bool { return false }}))
	var calls atomic.Int32
	handled := make(chan string, 10)
	runRouter(t, ps, topic, func(msg *message.Message) error {
		calls.Add(1)
		handled <- string(msg.Payload)
		return nil
	}, dead, retry)

	bad := router.NewUndecodable("", []byte("\x82\xa1raw"), message.Metadata{"ce_source": "src"}, "metadata is not msgpack:\n unexpected code")
	publish(t, ps, topic, bad, message.NewMessage("good-1", []byte("good")))

	dl := recv(t, dlq)
	if got := recv(t, handled); got != "good" {
		t.Fatalf("handled %q, want the good message", got)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler called %d times, want once (for the good message only)", n)
	}
	md := dl.Metadata
	if string(dl.Payload) != "\x82\xa1raw" {
		t.Fatalf("dead letter payload = %q, want the raw bytes", dl.Payload)
	}
	if dl.UUID == "" || md.Get(router.KeyFaultGeneratedID) != "true" {
		t.Fatalf("dead letter id %q generated=%q, want a generated id", dl.UUID, md.Get(router.KeyFaultGeneratedID))
	}
	if e := md.Get(router.KeyFaultError); !strings.Contains(e, "could not unmarshal") || !strings.Contains(e, "metadata is not msgpack: unexpected code") {
		t.Fatalf("fault error = %q, want the cause", e)
	}
	for k, want := range map[string]string{
		router.KeyFaultType:      "*router.UnmarshalError",
		router.KeyFaultPermanent: "true",
		router.KeyFaultAttempts:  "0",
		router.KeyFaultTopic:     topic,
		"ce_source":              "src",
		router.KeyTransportError: "",
	} {
		if got := md.Get(k); got != want {
			t.Errorf("dead letter %s = %q, want %q", k, got, want)
		}
	}
}
