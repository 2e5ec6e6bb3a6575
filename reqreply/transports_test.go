package reqreply_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	nc "github.com/nats-io/nats.go"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/hexeract/hexeract"
	adamqp "github.com/hexeract/hexeract/adapters/amqp"
	adkafka "github.com/hexeract/hexeract/adapters/kafka"
	adnats "github.com/hexeract/hexeract/adapters/nats"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/reqreply"
	"github.com/hexeract/hexeract/reqreply/replyamqp"
	"github.com/hexeract/hexeract/reqreply/replynats"
)

// suiteTopics are the request topics the suite uses (by wire name).
var suiteTopics = []string{Double{}.MessageType(), PlaceOrder{}.MessageType()}

func newTestApp(t *testing.T, opts ...hexeract.Option) *hexeract.App {
	t.Helper()
	app, err := hexeract.New(append([]hexeract.Option{hexeract.WithLogger(quietLogger())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Close() })
	return app
}

func closeLater(t *testing.T, closers ...interface{ Close() error }) {
	t.Cleanup(func() {
		for _, c := range closers {
			_ = c.Close()
		}
	})
}

// RabbitMQ: requests on adapters/amqp (durable queue per topic and group,
// with a TTL from the deadline), replies on exclusive auto-delete queues
// through the default exchange (replyamqp).
func amqpTransport(t *testing.T) transport {
	url := testenv.AMQPURL(t)
	sfx := testenv.Suffix()
	topics := hexeract.WithTopicFunc(func(name string) string { return name + "_" + sfx })
	cfg := adamqp.Config{URL: url, Group: "responders"}
	t.Cleanup(func() { deleteAMQP(t, url, sfx, cfg.Group) })
	return transport{
		name:    "amqp",
		durable: true,
		ttl:     true,
		newResponder: func(t *testing.T) (*hexeract.App, []reqreply.HandlerOption) {
			pub, sub, err := adamqp.New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			replyPub, err := replyamqp.NewReplyPublisher(url, nil)
			if err != nil {
				t.Fatal(err)
			}
			closeLater(t, sub, pub, replyPub)
			return newTestApp(t, hexeract.WithPubSub(pub, sub), topics), []reqreply.HandlerOption{reqreply.WithReplyPublisher(replyPub)}
		},
		newCaller: func(t *testing.T) (*hexeract.App, []reqreply.ClientOption) {
			wc := cfg.WatermillConfig()
			wc.Marshaler = replyamqp.Marshaler(wamqp.DefaultMarshaler{})
			pub, err := wamqp.NewPublisher(wc, watermill.NopLogger{})
			if err != nil {
				t.Fatal(err)
			}
			replies, err := replyamqp.NewReplySubscriber(url, nil)
			if err != nil {
				t.Fatal(err)
			}
			closeLater(t, replies, pub)
			return newTestApp(t, hexeract.WithPublisher(pub), topics), []reqreply.ClientOption{reqreply.WithReplySubscriber(replies)}
		},
	}
}

// deleteAMQP removes the durable queues and exchanges a test created.
func deleteAMQP(t *testing.T, url, sfx, group string) {
	conn, err := amqp091.Dial(url)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	defer ch.Close()
	for _, name := range suiteTopics {
		topic := name + "_" + sfx
		_, _ = ch.QueueDelete(adamqp.QueueName(topic, group), false, false, false)
		_ = ch.ExchangeDelete(topic, false, false)
	}
}

func TestRabbitMQ(t *testing.T) { runSuite(t, amqpTransport) }

// NATS: requests on JetStream (adapters/nats: a stream per topic, a durable
// consumer per group), replies on core NATS (replynats).
func natsTransport(t *testing.T) transport {
	url := testenv.NATSURL(t)
	sfx := testenv.Suffix()
	topics := hexeract.WithTopicFunc(func(name string) string { return name + "." + sfx })
	cfg := adnats.Config{URL: url, Group: "responders", AckWait: 3 * time.Second}
	t.Cleanup(func() { deleteStreams(t, url, sfx) })
	return transport{
		name:    "nats",
		durable: true,
		newResponder: func(t *testing.T) (*hexeract.App, []reqreply.HandlerOption) {
			pub, sub, err := adnats.New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			replyPub, err := replynats.NewReplyPublisher(url, nil)
			if err != nil {
				t.Fatal(err)
			}
			closeLater(t, sub, pub, replyPub)
			return newTestApp(t, hexeract.WithPubSub(pub, sub), topics), []reqreply.HandlerOption{reqreply.WithReplyPublisher(replyPub)}
		},
		newCaller: func(t *testing.T) (*hexeract.App, []reqreply.ClientOption) {
			pub, err := adnats.NewPublisher(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			replies, err := replynats.NewReplySubscriber(url, nil)
			if err != nil {
				t.Fatal(err)
			}
			closeLater(t, replies, pub)
			return newTestApp(t, hexeract.WithPublisher(pub), topics), []reqreply.ClientOption{reqreply.WithReplySubscriber(replies)}
		},
	}
}

func deleteStreams(t *testing.T, url, sfx string) {
	conn, err := nc.Connect(url)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	js, err := conn.JetStream()
	if err != nil {
		return
	}
	for _, name := range suiteTopics {
		_ = js.DeleteStream(adnats.StreamName(name + "." + sfx))
	}
}

func TestNATS(t *testing.T) { runSuite(t, natsTransport) }

// Kafka (in-process kfake): requests on adapters/kafka with the responders'
// consumer group; replies through a consumer group of the caller instance's own.
func kafkaTransport(t *testing.T) transport {
	brokers := testenv.Kafka(t)
	cfg := adkafka.Config{Brokers: brokers, Group: "responders"}
	return transport{
		name:    "kafka",
		durable: true,
		newResponder: func(t *testing.T) (*hexeract.App, []reqreply.HandlerOption) {
			pub, sub, err := adkafka.New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			closeLater(t, sub, pub)
			return newTestApp(t, hexeract.WithPubSub(pub, sub)), nil
		},
		newCaller: func(t *testing.T) (*hexeract.App, []reqreply.ClientOption) {
			pub, err := adkafka.NewPublisher(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			replies, err := adkafka.NewSubscriber(adkafka.Config{Brokers: brokers, Group: "replies-" + testenv.Suffix()}, nil)
			if err != nil {
				t.Fatal(err)
			}
			closeLater(t, replies, pub)
			return newTestApp(t, hexeract.WithPublisher(pub)), []reqreply.ClientOption{reqreply.WithReplySubscriber(replies)}
		},
	}
}

func TestKafka(t *testing.T) { runSuite(t, kafkaTransport) }

// With replyamqp.Marshaler the request's expiration is its deadline: a
// request nobody waits for any more is dropped by RabbitMQ, so a responder
// that starts later never even receives it.
func TestRabbitMQRequestTTL(t *testing.T) {
	tr := amqpTransport(t)
	respA, hopts := tr.newResponder(t)
	if err := reqreply.Handle(respA, doubleHandler("a", nil), hopts...); err != nil {
		t.Fatal(err)
	}
	stopA := testenv.StartApp(t, respA) // declares the durable request queue
	stopA()
	caller := newClient(t, tr)
	_, err := reqreply.Request[Double, Doubled](context.Background(), caller, Double{N: 1}, reqreply.Timeout(200*time.Millisecond))
	if !errors.Is(err, reqreply.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout while no responder runs", err)
	}
	time.Sleep(300 * time.Millisecond)

	var calls atomic.Int64
	respB, hopts := tr.newResponder(t)
	if err := reqreply.Handle(respB, doubleHandler("b", &calls), hopts...); err != nil {
		t.Fatal(err)
	}
	testenv.StartApp(t, respB)
	got, err := reqreply.Request[Double, Doubled](context.Background(), caller, Double{N: 2}, reqreply.Timeout(20*time.Second))
	if err != nil || got.Result != 4 {
		t.Fatalf("got %+v, %v", got, err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("responder B ran %d times, want 1: the expired request should have been dropped by the broker", n)
	}
	if st := reqreply.StatsFor(respB); st.Expired != 0 {
		t.Errorf("responder B skipped %d expired requests, want 0 (the broker drops them)", st.Expired)
	}
}
