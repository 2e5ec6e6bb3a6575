package reqreply_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	nc "github.com/nats-io/nats.go"

	"github.com/hexeract/hexeract"
	adamqp "github.com/hexeract/hexeract/adapters/amqp"
	adnats "github.com/hexeract/hexeract/adapters/nats"
	adredis "github.com/hexeract/hexeract/adapters/redis"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/reqreply"
	"github.com/hexeract/hexeract/router"
)

// Compile-time: the adapters' publishers offer their reply channel.
var (
	_ reqreply.ReplyTransport = (*adamqp.Publisher)(nil)
	_ reqreply.ReplyTransport = (*adnats.Publisher)(nil)
)

// RabbitMQ with nothing configured for replies: both Apps on adapters/amqp,
// the reply transport derived from it (an exclusive queue per caller).
func amqpDerivedTransport(t *testing.T) transport {
	url := testenv.AMQPURL(t)
	sfx := testenv.Suffix()
	topics := hexeract.WithTopicFunc(func(name string) string { return name + "_" + sfx })
	cfg := adamqp.Config{URL: url, Group: "responders"}
	t.Cleanup(func() { deleteAMQP(t, url, sfx, cfg.Group) })
	return transport{
		name:    "amqp-derived",
		durable: true,
		newResponder: func(t *testing.T) (*hexeract.App, []reqreply.HandlerOption) {
			pub, sub, err := adamqp.New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			closeLater(t, sub, pub)
			return newTestApp(t, hexeract.WithPubSub(pub, sub), topics), nil
		},
		newCaller: func(t *testing.T) (*hexeract.App, []reqreply.ClientOption) {
			pub, err := adamqp.NewPublisher(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			closeLater(t, pub)
			return newTestApp(t, hexeract.WithPublisher(pub), topics), nil
		},
	}
}

func TestRabbitMQDerived(t *testing.T) { runSuite(t, amqpDerivedTransport) }

// NATS with nothing configured for replies: requests on JetStream, replies
// on core NATS through the publishers' own connections.
func natsDerivedTransport(t *testing.T) transport {
	url := testenv.NATSURL(t)
	sfx := testenv.Suffix()
	topics := hexeract.WithTopicFunc(func(name string) string { return name + "." + sfx })
	cfg := adnats.Config{URL: url, Group: "responders", AckWait: 3 * time.Second}
	t.Cleanup(func() { deleteStreams(t, url, sfx) })
	return transport{
		name:    "nats-derived",
		durable: true,
		newResponder: func(t *testing.T) (*hexeract.App, []reqreply.HandlerOption) {
			pub, sub, err := adnats.New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			closeLater(t, sub, pub)
			return newTestApp(t, hexeract.WithPubSub(pub, sub), topics), nil
		},
		newCaller: func(t *testing.T) (*hexeract.App, []reqreply.ClientOption) {
			pub, err := adnats.NewPublisher(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			closeLater(t, pub)
			return newTestApp(t, hexeract.WithPublisher(pub), topics), nil
		},
	}
}

func TestNATSDerived(t *testing.T) { runSuite(t, natsDerivedTransport) }

// Redis Streams has no reply channel of its own: the client falls back to
// the per-instance reply topic on the App's subscriber.
func redisFallbackTransport(t *testing.T) transport {
	rawURL := testenv.RedisURL(t)
	sfx := testenv.Suffix()
	topics := hexeract.WithTopicFunc(func(name string) string { return name + "." + sfx })
	open := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		opts, err := adredis.ParseURL(rawURL)
		if err != nil {
			t.Fatal(err)
		}
		opts.Group = group
		pub, sub, client, err := opts.Open(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		closeLater(t, sub, pub, client)
		return pub, sub
	}
	return transport{
		name:    "redis-fallback",
		durable: true,
		newResponder: func(t *testing.T) (*hexeract.App, []reqreply.HandlerOption) {
			pub, sub := open(t, "responders")
			return newTestApp(t, hexeract.WithPubSub(pub, sub), topics), nil
		},
		newCaller: func(t *testing.T) (*hexeract.App, []reqreply.ClientOption) {
			pub, sub := open(t, "caller-"+testenv.Suffix())
			return newTestApp(t, hexeract.WithPubSub(pub, sub), topics), nil
		},
	}
}

func TestRedisFallback(t *testing.T) { runSuite(t, redisFallbackTransport) }

// The client's reply channel is what the transport offers, and requests say so.
func TestReplyViaPerTransport(t *testing.T) {
	for _, tc := range []struct {
		name string
		mk   func(t *testing.T) transport
		via  string
	}{
		{"amqp", amqpDerivedTransport, adamqp.ReplyScheme},
		{"nats", natsDerivedTransport, adnats.ReplyScheme},
		{"redis", redisFallbackTransport, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caller, _ := tc.mk(t).newCaller(t)
			c, err := reqreply.ClientFor(caller)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.ReplyVia(); got != tc.via {
				t.Fatalf("ReplyVia = %q, want %q", got, tc.via)
			}
		})
	}
}

// amqpQueue is what the management API says about a queue.
type amqpQueue struct {
	Name       string `json:"name"`
	Durable    bool   `json:"durable"`
	AutoDelete bool   `json:"auto_delete"`
	Exclusive  bool   `json:"exclusive"`
}

// amqpList lists the queues or exchanges (kind) of the default vhost.
func amqpList[T any](t *testing.T, kind string) []T {
	t.Helper()
	api := testenv.AMQPManagementURL(t)
	u, err := url.Parse(testenv.AMQPURL(t))
	if err != nil {
		t.Fatal(err)
	}
	pass, _ := u.User.Password()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, api+"/api/"+kind+"/%2F", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(u.User.Username(), pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("management API: list %s: %s", kind, resp.Status)
	}
	var out []T
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// findQueues returns the queues whose name contains s.
func findQueues(t *testing.T, s string) []amqpQueue {
	var out []amqpQueue
	for _, q := range amqpList[amqpQueue](t, "queues") {
		if strings.Contains(q.Name, s) {
			out = append(out, q)
		}
	}
	return out
}

// On RabbitMQ the reply goes through one exclusive, auto-deleted queue
// named after the client's reply topic, and nothing else is created for
// it (no exchange, no durable queue); App.Close removes the queue.
func TestRabbitMQDerivedReplyQueue(t *testing.T) {
	tr := amqpDerivedTransport(t)
	resp, _ := tr.newResponder(t)
	if err := reqreply.Handle(resp, doubleHandler("a", nil)); err != nil {
		t.Fatal(err)
	}
	testenv.StartApp(t, resp)
	caller, _ := tr.newCaller(t)
	stop := testenv.StartApp(t, caller)
	c, err := reqreply.ClientFor(caller)
	if err != nil {
		t.Fatal(err)
	}
	got, err := reqreply.Call[Double, Doubled](context.Background(), c, Double{N: 4}, reqreply.Timeout(20*time.Second))
	if err != nil || got.Result != 8 {
		t.Fatalf("got %+v, %v", got, err)
	}
	// With NoResponderTimeout the receipt takes the same way.
	if _, err := reqreply.Call[Double, Doubled](context.Background(), c, Double{N: 1}, reqreply.NoResponderTimeout(10*time.Second), reqreply.Timeout(20*time.Second)); err != nil {
		t.Fatal(err)
	}
	topic := c.ReplyTopic()
	qs := findQueues(t, topic)
	if len(qs) != 1 || qs[0].Name != topic || !qs[0].Exclusive || !qs[0].AutoDelete || qs[0].Durable {
		t.Fatalf("queues for reply topic %q: %+v; want one exclusive, auto-delete, non-durable queue of that name", topic, qs)
	}
	for _, x := range amqpList[struct{ Name string }](t, "exchanges") {
		if strings.Contains(x.Name, topic) {
			t.Fatalf("exchange %q was declared for the reply topic", x.Name)
		}
	}
	stop()
	if err := caller.Close(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the reply queue to be removed", func() bool { return len(findQueues(t, topic)) == 0 })
}

// On NATS the reply goes through a core subscription: the server has no
// stream capturing the reply topic, before or after the round trip.
func TestNATSDerivedCoreReplies(t *testing.T) {
	tr := natsDerivedTransport(t)
	resp, _ := tr.newResponder(t)
	if err := reqreply.Handle(resp, doubleHandler("a", nil)); err != nil {
		t.Fatal(err)
	}
	testenv.StartApp(t, resp)
	caller, _ := tr.newCaller(t)
	c, err := reqreply.ClientFor(caller)
	if err != nil {
		t.Fatal(err)
	}
	// Watch the reply subject on another connection: the reply is seen there.
	conn, err := nc.Connect(testenv.NATSURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	seen, err := conn.SubscribeSync(c.ReplyTopic())
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
	got, err := reqreply.Call[Double, Doubled](context.Background(), c, Double{N: 4}, reqreply.Timeout(20*time.Second))
	if err != nil || got.Result != 8 {
		t.Fatalf("got %+v, %v", got, err)
	}
	m, err := seen.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no reply on core subject %q: %v", c.ReplyTopic(), err)
	}
	if m.Header.Get(router.KeyRequestID) == "" {
		t.Fatalf("the message on the reply subject is not a reply: %v", m.Header)
	}
	js, err := conn.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if name, err := js.StreamNameBySubject(c.ReplyTopic()); err == nil {
		t.Fatalf("stream %q captures the reply topic", name)
	}
	if err := seen.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	if !natsInterest(t, conn, c.ReplyTopic()) {
		t.Fatal("the server knows no subscription to the reply topic while the client runs")
	}
	if err := caller.Close(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "the reply subscription to end", func() bool { return !natsInterest(t, conn, c.ReplyTopic()) })
}

// natsInterest reports whether anything subscribes to subject: a request
// to a subject nobody subscribes to fails at once with ErrNoResponders.
func natsInterest(t *testing.T, conn *nc.Conn, subject string) bool {
	t.Helper()
	_, err := conn.Request(subject, nil, 300*time.Millisecond)
	return !errors.Is(err, nc.ErrNoResponders)
}

// Timeouts behave as before on the derived transports: a request nobody
// answers ends with ErrTimeout, and with NoResponderTimeout with
// ErrNoResponder.
func TestDerivedNoAnswer(t *testing.T) {
	for _, mk := range []func(t *testing.T) transport{amqpDerivedTransport, natsDerivedTransport} {
		tr := mk(t)
		t.Run(tr.name, func(t *testing.T) {
			caller := newClient(t, tr)
			_, err := reqreply.Request[Double, Doubled](context.Background(), caller, Double{N: 1}, reqreply.Timeout(300*time.Millisecond))
			if !errors.Is(err, reqreply.ErrTimeout) {
				t.Fatalf("err = %v, want ErrTimeout", err)
			}
			_, err = reqreply.Request[Double, Doubled](context.Background(), caller, Double{N: 1}, reqreply.NoResponderTimeout(300*time.Millisecond), reqreply.Timeout(5*time.Second))
			if !errors.Is(err, reqreply.ErrNoResponder) {
				t.Fatalf("err = %v, want ErrNoResponder", err)
			}
		})
	}
}

// A caller with an explicit reply subscriber (here replies on the App's
// transport, a durable queue) sends no reply-via mark, so a responder with
// a derivable transport answers through the App's publisher, as before.
func TestExplicitReplySubscriberIsNotDerived(t *testing.T) {
	tr := amqpDerivedTransport(t)
	resp, _ := tr.newResponder(t)
	if err := reqreply.Handle(resp, doubleHandler("a", nil)); err != nil {
		t.Fatal(err)
	}
	testenv.StartApp(t, resp)
	caller, _ := tr.newCaller(t)
	group := "explicit-" + testenv.Suffix()
	sub, err := adamqp.NewSubscriber(adamqp.Config{URL: testenv.AMQPURL(t), Group: group}, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeLater(t, sub)
	t.Cleanup(func() { _ = testenv.DeleteAMQPGroupQueues(testenv.AMQPURL(t), group) })
	c, err := reqreply.NewClient(caller, reqreply.WithReplySubscriber(sub))
	if err != nil {
		t.Fatal(err)
	}
	if c.ReplyVia() != "" {
		t.Fatalf("ReplyVia = %q with an explicit reply subscriber", c.ReplyVia())
	}
	t.Cleanup(func() { _ = testenv.DeleteAMQPExchanges(testenv.AMQPURL(t), c.ReplyTopic()) })
	got, err := reqreply.Call[Double, Doubled](context.Background(), c, Double{N: 5}, reqreply.Timeout(20*time.Second))
	if err != nil || got.Result != 10 {
		t.Fatalf("got %+v, %v", got, err)
	}
}
