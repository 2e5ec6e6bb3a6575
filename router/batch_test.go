package router_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/adapters/gochannel"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
)

// expandThen is the test's stand-in for the App's ingress: it splits a
// structured message with ExpandStructured and hands every event to the
// typed handler function, in order.
func expandThen(typed message.NoPublishHandlerFunc) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		msgs, err := router.ExpandStructured(msg)
		if err != nil {
			return err
		}
		if msgs == nil {
			return typed(msg)
		}
		var errs []error
		for _, m := range msgs {
			errs = append(errs, typed(m))
		}
		return errors.Join(errs...)
	}
}

// TestBatchOfThreeYieldsThreeHandledMessages runs a CloudEvents batch of
// three events through a Watermill router with Hexeract's default chain:
// the typed handler is called three times, in order, each with its event's
// envelope.
func TestBatchOfThreeYieldsThreeHandledMessages(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ps := gochannel.New(gochannel.Config{Persistent: true}, nil)
	r, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := middleware.Default(middleware.DefaultConfig{Publisher: ps})
	if err != nil {
		t.Fatal(err)
	}
	r.AddMiddleware(chain...)

	type got struct {
		user UserRegistered
		env  router.Envelope
	}
	handled := make(chan got, 3)
	typed, err := router.NewHandlerFunc(router.HandlerFunc[UserRegistered](func(ctx context.Context, u UserRegistered) error {
		env, _ := router.EnvelopeFrom(ctx)
		handled <- got{u, env}
		return nil
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	r.AddConsumerHandler("users", "users.registered", ps, expandThen(typed))
	go func() { _ = r.Run(ctx) }()
	<-r.Running()
	defer r.Close()

	batch := "["
	for i := 1; i <= 3; i++ {
		if i > 1 {
			batch += ","
		}
		batch += fmt.Sprintf(`{"specversion":"1.0","id":"b-%d","source":"/batcher","type":"users.registered","correlationid":"conv-b","data":{"user_id":"u-%d"}}`, i, i)
	}
	batch += "]"
	msg := message.NewMessage(watermill.NewUUID(), []byte(batch))
	msg.Metadata.Set(router.KeyContentType, router.ContentTypeCloudEventsBatch)
	if err := ps.Publish("users.registered", msg); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		select {
		case g := <-handled:
			if g.user.UserID != fmt.Sprintf("u-%d", i) || g.env.ID != fmt.Sprintf("b-%d", i) || g.env.Source != "/batcher" ||
				g.env.CorrelationID != "conv-b" || g.env.Topic != "users.registered" {
				t.Errorf("event %d: %+v %+v", i, g.user, g.env)
			}
		case <-ctx.Done():
			t.Fatalf("handled %d of 3 events", i-1)
		}
	}
}
