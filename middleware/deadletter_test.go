package middleware_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	wmmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
)

// TestDeadLetterContents: after the retries, the dead letter carries the
// original UUID, payload and metadata (secrets removed) plus the fault keys
// and Watermill's poison-queue keys; the original is acked and the consumer
// goes on with the next message.
func TestDeadLetterContents(t *testing.T) {
	ps := newPubSub(t)
	topic := topicName("orders")
	dlq := subscribe(t, ps, topic+".dlq")
	retry := must(middleware.Retry(middleware.RetryPolicy{MaxAttempts: 3, InitialInterval: 5 * time.Millisecond}))
	dead := must(middleware.DeadLetter(ps, middleware.DeadLetterOptions{SecretKeys: []string{"X-Customer-Pin"}}))
	handled := make(chan string, 10)
	runRouter(t, ps, topic, func(msg *message.Message) error {
		if string(msg.Payload) == "bad" {
			return errors.New("warehouse rejected the order: sku unknown")
		}
		handled <- string(msg.Payload)
		return nil
	}, dead, retry)

	bad := message.NewMessage("msg-bad", []byte("bad"))
	bad.Metadata.Set("ce_type", "orders.placed")
	bad.Metadata.Set("correlation_id", "corr-1")
	bad.Metadata.Set("Authorization", "Bearer abc")
	bad.Metadata.Set("x-session-token", "tok")
	bad.Metadata.Set("db_password", "hunter2")
	bad.Metadata.Set("X-Customer-Pin", "1234")
	bad.Metadata.Set("hexeract_fault_stack", "stale stack from an earlier failure")
	before := time.Now()
	publish(t, ps, topic, bad, message.NewMessage("msg-good", []byte("good")))

	dl := recv(t, dlq)
	if got := recv(t, handled); got != "good" {
		t.Fatalf("next message handled = %q", got)
	}
	if dl.UUID != "msg-bad" || string(dl.Payload) != "bad" {
		t.Fatalf("dead letter = %s %q, want the original UUID and payload", dl.UUID, dl.Payload)
	}
	md := dl.Metadata
	for k, want := range map[string]string{
		"ce_type":                         "orders.placed",
		"correlation_id":                  "corr-1",
		router.KeyFaultError:              "warehouse rejected the order: sku unknown",
		router.KeyFaultType:               "*errors.errorString",
		router.KeyFaultPermanent:          "false",
		router.KeyFaultHandler:            "handler-" + topic,
		router.KeyFaultTopic:              topic,
		router.KeyFaultAttempts:           "3",
		wmmiddleware.ReasonForPoisonedKey: "warehouse rejected the order: sku unknown",
		wmmiddleware.PoisonedTopicKey:     topic,
		wmmiddleware.PoisonedHandlerKey:   "handler-" + topic,
	} {
		if md.Get(k) != want {
			t.Errorf("metadata %s = %q, want %q", k, md.Get(k), want)
		}
	}
	if md.Get(wmmiddleware.PoisonedSubscriberKey) == "" {
		t.Errorf("subscriber_poisoned missing")
	}
	for _, k := range []string{"Authorization", "x-session-token", "db_password", "X-Customer-Pin", router.KeyFaultStack} {
		if _, ok := md[k]; ok {
			t.Errorf("metadata %s copied into the dead letter: %q", k, md[k])
		}
	}
	first, err1 := time.Parse(time.RFC3339Nano, md.Get(router.KeyFaultFirstFailure))
	last, err2 := time.Parse(time.RFC3339Nano, md.Get(router.KeyFaultLastFailure))
	if err1 != nil || err2 != nil {
		t.Fatalf("failure times: %v %v", err1, err2)
	}
	if first.Before(before) || !last.After(first) || last.Sub(first) < 10*time.Millisecond {
		t.Errorf("first failure %v, last failure %v: want first after publish and last ≥ 2 backoffs later", first, last)
	}
}

// TestPanicIsDeadLetteredWithStack: a panicking handler (Watermill's
// Recoverer inside Retry, as in the default chain) ends in the dead-letter
// topic with a one-line stack that starts at the panic and names the
// handler function.
func TestPanicIsDeadLetteredWithStack(t *testing.T) {
	ps := newPubSub(t)
	topic := topicName("panics")
	dlq := subscribe(t, ps, topic+".dlq")
	retry := must(middleware.Retry(middleware.RetryPolicy{MaxAttempts: 2, InitialInterval: time.Millisecond}))
	dead := must(middleware.DeadLetter(ps, middleware.DeadLetterOptions{}))
	handled := make(chan string, 10)
	runRouter(t, ps, topic, func(msg *message.Message) error {
		if string(msg.Payload) == "nil map" {
			explode()
		}
		handled <- string(msg.Payload)
		return nil
	}, dead, retry, wmmiddleware.Recoverer)
	publish(t, ps, topic, message.NewMessage("p1", []byte("nil map")), message.NewMessage("p2", []byte("fine")))
	dl := recv(t, dlq)
	if got := recv(t, handled); got != "fine" {
		t.Fatalf("handled %q", got)
	}
	md := dl.Metadata
	if md.Get(router.KeyFaultType) != "panic" || md.Get(router.KeyFaultAttempts) != "2" {
		t.Errorf("type %q attempts %q, want panic and 2", md.Get(router.KeyFaultType), md.Get(router.KeyFaultAttempts))
	}
	if !strings.HasPrefix(md.Get(router.KeyFaultError), "panic: assignment to entry in nil map") {
		t.Errorf("error = %q", md.Get(router.KeyFaultError))
	}
	stack := md.Get(router.KeyFaultStack)
	if !strings.HasPrefix(stack, "panic(") || !strings.Contains(stack, "middleware_test.explode") || strings.Contains(stack, "\n") {
		t.Errorf("stack = %q, want one line from panic( naming explode", stack)
	}
	if len(stack) > middleware.DefaultMaxStackLength {
		t.Errorf("stack is %d bytes, limit %d", len(stack), middleware.DefaultMaxStackLength)
	}
}

func explode() {
	var m map[string]int
	m["boom"]++ //nolint:staticcheck // the deliberate panic under test
}

// TestPermanentErrorIsDeadLetteredAtOnce: one attempt, permanent flag set.
func TestPermanentErrorIsDeadLetteredAtOnce(t *testing.T) {
	ps := newPubSub(t)
	topic := topicName("cards")
	dlq := subscribe(t, ps, topic+".dlq")
	retry := must(middleware.Retry(middleware.RetryPolicy{MaxAttempts: 5, InitialInterval: time.Second}))
	dead := must(middleware.DeadLetter(ps, middleware.DeadLetterOptions{}))
	var calls atomic.Int32
	runRouter(t, ps, topic, func(msg *message.Message) error {
		calls.Add(1)
		return hexeract.Permanent(errors.New("card declined"))
	}, dead, retry)
	publish(t, ps, topic, message.NewMessage("c1", []byte("{}")))
	dl := recv(t, dlq)
	if calls.Load() != 1 || dl.Metadata.Get(router.KeyFaultAttempts) != "1" || dl.Metadata.Get(router.KeyFaultPermanent) != "true" {
		t.Fatalf("calls %d, metadata %v", calls.Load(), dl.Metadata)
	}
	if dl.Metadata.Get(router.KeyFaultType) != "*errors.errorString" {
		t.Errorf("type = %q (router.Permanent's wrapper should be looked through)", dl.Metadata.Get(router.KeyFaultType))
	}
}

// TestFailingDeadLetterPublishNacksTheOriginal: while the dead-letter topic
// cannot be written, the original is nacked (GoChannel redelivers it); once
// the broker is back the message lands in the dead-letter topic. It is
// never lost.
func TestFailingDeadLetterPublishNacksTheOriginal(t *testing.T) {
	ps := newPubSub(t)
	topic := topicName("flaky")
	dlq := subscribe(t, ps, topic+".dlq")
	flaky := &flakyPublisher{Publisher: ps, suffix: ".dlq", fails: 3}
	dead := must(middleware.DeadLetter(flaky, middleware.DeadLetterOptions{}))
	var deliveries atomic.Int32
	runRouter(t, ps, topic, func(msg *message.Message) error {
		deliveries.Add(1)
		return router.Permanent(errors.New("unprocessable"))
	}, dead)
	publish(t, ps, topic, message.NewMessage("f1", []byte("x")))
	dl := recv(t, dlq)
	if dl.UUID != "f1" {
		t.Fatalf("dead letter %s", dl.UUID)
	}
	if deliveries.Load() != 4 {
		t.Fatalf("message delivered %d times, want 4 (3 nacked dead-letter publishes, then success)", deliveries.Load())
	}
}

// TestDeadLetterErrorJoinsPublishFailure checks the error returned to the
// router when the dead-letter publish fails.
func TestDeadLetterErrorJoinsPublishFailure(t *testing.T) {
	ps := newPubSub(t)
	topic := topicName("joined")
	flaky := &flakyPublisher{Publisher: ps, suffix: ".dlq", fails: 1}
	dead := must(middleware.DeadLetter(flaky, middleware.DeadLetterOptions{}))
	cause := errors.New("unprocessable")
	errs := make(chan error, 4)
	capture := func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			errs <- err
			return out, err
		}
	}
	runRouter(t, ps, topic, func(*message.Message) error { return cause }, capture, dead)
	publish(t, ps, topic, message.NewMessage("j1", nil))
	err := recv(t, errs)
	if !errors.Is(err, cause) || !strings.Contains(err.Error(), "broker unavailable") || !strings.Contains(err.Error(), topic+".dlq") {
		t.Fatalf("err = %v", err)
	}
	if err := recv(t, errs); err != nil {
		t.Fatalf("second delivery: %v, want dead-lettered (nil)", err)
	}
}

// TestDeadLetterCustomTopicAndFilter: Topic maps the topic, and errors
// ShouldDeadLetter rejects are returned (nacked) instead.
func TestDeadLetterCustomTopicAndFilter(t *testing.T) {
	ps := newPubSub(t)
	topic := topicName("custom")
	dlq := subscribe(t, ps, "dead-letters")
	errSkip := errors.New("not for the DLQ")
	dead := must(middleware.DeadLetter(ps, middleware.DeadLetterOptions{
		Topic:            func(string) string { return "dead-letters" },
		ShouldDeadLetter: func(err error) bool { return !errors.Is(err, errSkip) },
	}))
	var calls atomic.Int32
	runRouter(t, ps, topic, func(msg *message.Message) error {
		if string(msg.Payload) == "skip" && calls.Add(1) < 3 {
			return errSkip // nacked twice, then handled
		}
		if string(msg.Payload) == "dead" {
			return errors.New("to the dead-letter topic")
		}
		return nil
	}, dead)
	publish(t, ps, topic, message.NewMessage("s1", []byte("skip")), message.NewMessage("d1", []byte("dead")))
	if dl := recv(t, dlq); dl.UUID != "d1" {
		t.Fatalf("dead letter %s", dl.UUID)
	}
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if calls.Load() != 3 {
		t.Fatalf("filtered message handled %d times, want 3", calls.Load())
	}
	select {
	case m := <-dlq:
		t.Fatalf("filtered message dead-lettered: %s", m.UUID)
	case <-time.After(20 * time.Millisecond):
	}
}

// TestDeadLetterDoesNotMoveMessagesOnShutdown: when the message context is
// cancelled while the handler fails, the message is nacked, not
// dead-lettered.
func TestDeadLetterDoesNotMoveMessagesOnShutdown(t *testing.T) {
	ps := newPubSub(t)
	dead := must(middleware.DeadLetter(ps, middleware.DeadLetterOptions{}))
	topic := topicName("shutdown")
	dlq := subscribe(t, ps, topic+".dlq")
	ctx, cancel := context.WithCancel(context.Background())
	h := middleware.Chain(func(*message.Message) ([]*message.Message, error) {
		cancel()
		return nil, errors.New("interrupted")
	}, dead)
	msg := message.NewMessage("s1", nil)
	msg.SetContext(ctx)
	if _, err := h(msg); err == nil {
		t.Fatal("error swallowed during shutdown")
	}
	select {
	case m := <-dlq:
		t.Fatalf("dead-lettered on shutdown: %s", m.UUID)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestDefaultIsSecret(t *testing.T) {
	for key, want := range map[string]bool{
		"Authorization": true, "cookie": true, "X-Api-Key": true, "refresh_token": true, "DB_PASSWORD": true,
		"client-secret": true, "aws_credentials": true,
		"ce_type": false, "correlation_id": false, "traceparent": false, "ce_partitionkey": false, "content-type": false,
	} {
		if got := middleware.DefaultIsSecret(key); got != want {
			t.Errorf("DefaultIsSecret(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestDeadLetterNeedsPublisher(t *testing.T) {
	if _, err := middleware.DeadLetter(nil, middleware.DeadLetterOptions{}); err == nil {
		t.Fatal("nil publisher accepted")
	}
}
