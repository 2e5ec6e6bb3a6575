package reqreply_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract"
	adamqp "github.com/hexeract/hexeract/adapters/amqp"
	adnats "github.com/hexeract/hexeract/adapters/nats"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/reqreply"
)

// requesterCycles runs a long-lived responder App on pub/sub, then n
// requester Apps on reqPub (shared, left open: an App does not close what
// it was given), each created, run, asked one request and closed. It
// returns the reply topics the requesters used.
func requesterCycles(t *testing.T, n int, resp *hexeract.App, reqPub message.Publisher, topics hexeract.Option) []string {
	if err := reqreply.Handle(resp, doubleHandler("a", nil)); err != nil {
		t.Fatal(err)
	}
	testenv.StartApp(t, resp)
	var replyTopics []string
	testenv.CheckNothingLeft(t, n, 4<<20, func(t testing.TB) {
		app, err := hexeract.New(hexeract.WithPublisher(reqPub), topics, hexeract.WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- app.Run(ctx) }()
		select {
		case <-app.Running():
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		}
		got, err := reqreply.Request[Double, Doubled](ctx, app, Double{N: 3}, reqreply.Timeout(20*time.Second))
		if err != nil || got.Result != 6 {
			t.Fatalf("request: %+v, %v", got, err)
		}
		c, err := reqreply.ClientFor(app)
		if err != nil {
			t.Fatal(err)
		}
		if c.ReplyVia() == "" {
			t.Fatal("the client did not derive its reply transport")
		}
		replyTopics = append(replyTopics, c.ReplyTopic())
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if err := app.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	})
	return replyTopics
}

// 1,000 requester Apps on RabbitMQ, each with its derived reply queue,
// leave no goroutine, no heap and no reply queue behind.
func TestThousandRequestersOnRabbitMQLeaveNothingBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 1,000 Apps; -short skips it")
	}
	tr := amqpDerivedTransport(t)
	resp, _ := tr.newResponder(t)
	pub, err := adamqp.NewPublisher(adamqp.Config{URL: testenv.AMQPURL(t), Group: "responders"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeLater(t, pub)
	replyTopics := requesterCycles(t, 1000, resp, pub, hexeract.WithTopicNaming(resp.Topics()))
	var left []string
	testenv.WaitFor(t, 10*time.Second, "every reply queue to be removed", func() bool {
		left = left[:0]
		for _, q := range amqpList[amqpQueue](t, "queues") {
			if slices.Contains(replyTopics, q.Name) {
				left = append(left, q.Name)
			}
		}
		return len(left) == 0
	})
	if len(replyTopics) < 1000 {
		t.Fatalf("%d reply topics recorded", len(replyTopics))
	}
}

// The same on NATS: 1,000 requester Apps, each with a core reply
// subscription on the shared publisher's connection.
func TestThousandRequestersOnNATSLeaveNothingBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 1,000 Apps; -short skips it")
	}
	tr := natsDerivedTransport(t)
	resp, _ := tr.newResponder(t)
	pub, err := adnats.NewPublisher(adnats.Config{URL: testenv.NATSURL(t), Group: "responders"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeLater(t, pub)
	requesterCycles(t, 1000, resp, pub, hexeract.WithTopicNaming(resp.Topics()))
}
