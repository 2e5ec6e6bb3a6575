package middleware_test

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
)

// TestDeadLetterSurvivesAnInitializeThatPanics: watermill-nats panics in
// SubscribeInitialize when JetStream is off; the dead letter is still
// published and the handler goroutine does not crash.
func TestDeadLetterSurvivesAnInitializeThatPanics(t *testing.T) {
	ps := newPubSub(t)
	topic := topicName("initpanic")
	dlq := subscribe(t, ps, topic+".dlq")
	var calls atomic.Int32
	dead := must(middleware.DeadLetter(ps, middleware.DeadLetterOptions{
		Logger: discardLogger(),
		Initialize: func(string) error {
			calls.Add(1)
			var js *struct{ stream string }
			_ = js.stream // nil dereference, like watermill-nats without JetStream
			return nil
		},
	}))
	runRouter(t, ps, topic, func(msg *message.Message) error {
		return router.Permanent(errors.New("refused"))
	}, dead)
	publish(t, ps, topic, message.NewMessage("p1", []byte("x")))
	if dl := recv(t, dlq); dl.UUID != "p1" {
		t.Fatalf("dead letter %s", dl.UUID)
	}
	publish(t, ps, topic, message.NewMessage("p2", []byte("x")))
	if dl := recv(t, dlq); dl.UUID != "p2" {
		t.Fatalf("dead letter %s", dl.UUID)
	}
	if calls.Load() != 1 {
		t.Fatalf("Initialize called %d times; a transport that cannot initialize is asked once", calls.Load())
	}
}

// TestDefaultChainRunsRedeliveryBetweenDeadLetterAndRetry: the Redelivery
// slot sees each delivery once, after Retry gave up, and its outcome is what
// DeadLetter sees.
func TestDefaultChainRunsRedeliveryBetweenDeadLetterAndRetry(t *testing.T) {
	ps := newPubSub(t)
	topic := topicName("redelivery")
	dlq := subscribe(t, ps, topic+".dlq")
	var handlerCalls, redeliverySaw atomic.Int32
	redelivery := func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			if err != nil {
				redeliverySaw.Add(1)
			}
			return out, err
		}
	}
	chain := must(middleware.Default(middleware.DefaultConfig{
		Publisher:  ps,
		Logger:     discardLogger(),
		Retry:      middleware.RetryPolicy{MaxAttempts: 3, InitialInterval: 1, MaxInterval: 1},
		Redelivery: redelivery,
	}))
	runRouter(t, ps, topic, func(msg *message.Message) error {
		handlerCalls.Add(1)
		return errors.New("transient")
	}, chain...)
	publish(t, ps, topic, message.NewMessage("r1", []byte("x")))
	recv(t, dlq)
	if handlerCalls.Load() != 3 || redeliverySaw.Load() != 1 {
		t.Fatalf("handler ran %d times (want 3 attempts), redelivery saw %d failures (want 1, after Retry)", handlerCalls.Load(), redeliverySaw.Load())
	}
}
