package middleware_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	wmmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/hexeract/hexeract/middleware"
)

// TestFaultOfReadsWatermillPoisonQueue: a dead letter written by
// Watermill's own PoisonQueue is understood, and revived onto its topic.
func TestFaultOfReadsWatermillPoisonQueue(t *testing.T) {
	ps := newPubSub(t)
	topic := topicName("wm")
	poisonTopic := topic + ".poison"
	poisoned := subscribe(t, ps, poisonTopic)
	pq := must(wmmiddleware.PoisonQueue(ps, poisonTopic))
	runRouter(t, ps, topic, func(*message.Message) error { return errors.New("bad data") }, pq)
	publish(t, ps, topic, message.NewMessage("w1", []byte("x")))
	dead := recv(t, poisoned)
	f, ok := middleware.FaultOf(dead.Metadata)
	if !ok || f.Error != "bad data" || f.Topic != topic || f.Handler != "handler-"+topic {
		t.Fatalf("fault = %+v, ok %v", f, ok)
	}
	msg, to, err := middleware.Revive(dead, "")
	if err != nil || to != topic || msg.UUID != "w1" {
		t.Fatalf("revive: %v %q %v", msg, to, err)
	}
	for k := range msg.Metadata {
		if middleware.IsFaultKey(k) {
			t.Errorf("fault key %s kept", k)
		}
	}
	if _, _, err := middleware.Revive(message.NewMessage("x", nil), ""); !errors.Is(err, middleware.ErrNoOriginalTopic) {
		t.Errorf("err = %v", err)
	}
}

// TestDeadLetterInitializesTopicBeforeFirstMessage: Initialize runs before
// the first message with the dead-letter topic; while it fails, good
// messages still flow and a message to dead-letter is nacked, then
// dead-lettered once Initialize succeeds.
func TestDeadLetterInitializesTopicBeforeFirstMessage(t *testing.T) {
	ps := newPubSub(t)
	topic := topicName("init")
	dlq := subscribe(t, ps, topic+".dlq")
	var mu sync.Mutex
	var initialized []string
	failures := 3
	dead := must(middleware.DeadLetter(ps, middleware.DeadLetterOptions{Initialize: func(topic string) error {
		mu.Lock()
		defer mu.Unlock()
		initialized = append(initialized, topic)
		if failures > 0 {
			failures--
			return errors.New("broker starting")
		}
		return nil
	}}))
	handled := make(chan string, 4)
	var badDeliveries atomic.Int32
	runRouter(t, ps, topic, func(msg *message.Message) error {
		if string(msg.Payload) == "bad" {
			badDeliveries.Add(1)
			return errors.New("bad")
		}
		handled <- msg.UUID
		return nil
	}, dead)
	publish(t, ps, topic, message.NewMessage("i1", nil)) // init fails (1), handled anyway
	if got := recv(t, handled); got != "i1" {
		t.Fatal(got)
	}
	publish(t, ps, topic, message.NewMessage("i2", []byte("bad"))) // init fails at entry (2) and before the dead letter (3): nacked; redelivered, init succeeds (4)
	if dl := recv(t, dlq); dl.UUID != "i2" {
		t.Fatalf("dead letter %s", dl.UUID)
	}
	publish(t, ps, topic, message.NewMessage("i3", nil))
	recv(t, handled)
	mu.Lock()
	defer mu.Unlock()
	if len(initialized) != 4 || initialized[0] != topic+".dlq" {
		t.Fatalf("initialized %v, want the DLQ topic 4 times (3 failures, then once)", initialized)
	}
	if badDeliveries.Load() != 2 {
		t.Fatalf("bad message delivered %d times, want 2 (nacked while Initialize failed)", badDeliveries.Load())
	}
}

// TestDecoratorsApplyOnce: decorating twice, in any nesting, adds one
// producer span per message.
func TestDecoratorsApplyOnce(t *testing.T) {
	ps := newPubSub(t)
	opts := middleware.TracingOptions{}
	once := middleware.TracingPublisher(middleware.CorrelationPublisher(ps), opts)
	if got := middleware.TracingPublisher(middleware.CorrelationPublisher(once), opts); got != once {
		t.Fatal("publisher decorated twice")
	}
}
