package hexeract_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hexeract/hexeract/store/postgres"

	"github.com/ThreeDotsLabs/watermill"
	wnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	wmmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/jackc/pgx/v5/pgxpool"
	nc "github.com/nats-io/nats.go"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters/gochannel"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/scheduler"
)

// wmNATS returns a plain watermill-nats publisher and subscriber with
// JetStream and AutoProvision on, the set-up of Watermill's documentation;
// the streams of the given topics are deleted when the test ends.
func wmNATS(t testing.TB, group string, topics ...string) (*wnats.Publisher, *wnats.Subscriber) {
	t.Helper()
	url := testenv.NATSURL(t)
	js := wnats.JetStreamConfig{
		AutoProvision:    true,
		DurablePrefix:    group,
		SubscribeOptions: []nc.SubOpt{nc.DeliverAll(), nc.AckExplicit(), nc.ManualAck()},
	}
	logger := watermill.NopLogger{}
	pub, err := wnats.NewPublisher(wnats.PublisherConfig{URL: url, JetStream: js}, logger)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := wnats.NewSubscriber(wnats.SubscriberConfig{
		URL: url, QueueGroupPrefix: group, CloseTimeout: 5 * time.Second, AckWaitTimeout: 30 * time.Second,
		SubscribersCount: 1, JetStream: js,
	}, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sub.Close()
		_ = pub.Close()
		deleteStreams(t, url, topics...)
	})
	return pub, sub
}

// deleteStreams removes the JetStream streams named after topics.
func deleteStreams(t testing.TB, url string, topics ...string) {
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
	for _, s := range topics {
		if err := js.DeleteStream(s); err != nil && !errors.Is(err, nc.ErrStreamNotFound) {
			t.Logf("cleanup: delete stream %s: %v", s, err)
		}
	}
}

// Invoiced has a dotted wire name, as Hexeract's message types usually do.
type Invoiced struct {
	ID string `json:"id"`
}

func (Invoiced) MessageType() string { return "billing.invoiced" }

// With watermill-nats and AutoProvision the topic is the stream name, which
// cannot hold dots: Run refuses the default naming at once and says what to
// change, instead of failing inside the router (handler) or redelivering
// every failing message for ever (dead-letter topic).
func TestRunRefusesDottedTopicsOnNATSAutoProvision(t *testing.T) {
	pub, sub := wmNATS(t, "refuse"+testenv.Suffix())
	app, err := hexeract.New(hexeract.WithPublisher(pub), hexeract.WithSubscriber(sub))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if err := hexeract.HandleFunc(app, func(context.Context, Invoiced) error { return nil }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = app.Run(ctx)
	if err == nil {
		t.Fatal("Run accepted a dotted topic on watermill-nats with AutoProvision")
	}
	for _, want := range []string{`"billing.invoiced"`, "AutoProvision", "hexeract.UnderscoreTopics"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Run error does not mention %s: %v", want, err)
		}
	}
}

// A handler on its own dot-free topic still has a dotted default
// dead-letter topic: Run names it.
func TestRunRefusesDottedDeadLetterTopicOnNATSAutoProvision(t *testing.T) {
	pub, sub := wmNATS(t, "refusedlq"+testenv.Suffix())
	app, err := hexeract.New(hexeract.WithPublisher(pub), hexeract.WithSubscriber(sub))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if err := app.AddHandler("raw", "raw_orders", func(*message.Message) error { return nil }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = app.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), `dead-letter topic of "raw_orders"`) || !strings.Contains(err.Error(), `"raw_orders.dlq"`) {
		t.Fatalf("Run error = %v, want one naming the dead-letter topic raw_orders.dlq", err)
	}
}

// One naming, given once: the App's handlers, its publisher, its dead
// letters, the outbox and the scheduler all use UnderscoreTopics, and the
// App runs on watermill-nats with AutoProvision.
func TestUnderscoreTopicsOnNATSAutoProvision(t *testing.T) {
	suffix := testenv.Suffix()
	topic := "billing_invoiced"
	pub, sub := wmNATS(t, "underscore"+suffix, topic, topic+"_dlq")
	deleteStreams(t, testenv.NATSURL(t), topic, topic+"_dlq")
	app, err := hexeract.New(hexeract.WithPublisher(pub), hexeract.WithSubscriber(sub),
		hexeract.WithTopicNaming(hexeract.UnderscoreTopics{}),
		hexeract.WithDefaultMiddleware(func(c *middleware.DefaultConfig) { c.Retry.MaxAttempts = 1 }))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	var mu sync.Mutex
	handled := map[string]int{}
	err = hexeract.HandleFunc(app, func(_ context.Context, m Invoiced) error {
		mu.Lock()
		handled[m.ID]++
		mu.Unlock()
		if m.ID == "poison" {
			return router.Permanent(errors.New("bad invoice"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := app.TopicFor(Invoiced{}); got != topic {
		t.Fatalf("TopicFor = %q, want %q", got, topic)
	}

	// The outbox and the scheduler take the naming from the App.
	pool, err := pgxpool.New(context.Background(), "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ob, err := outbox.New(postgres.New(pool), outbox.WithTopicNaming(app.Topics()))
	if err != nil {
		t.Fatal(err)
	}
	if got := ob.Topics().Topic("billing.invoiced"); got != topic {
		t.Errorf("outbox topic = %q, want %q", got, topic)
	}
	if _, err := scheduler.New(postgres.New(pool), ob); err != nil {
		t.Fatal(err)
	}

	stop := testenv.StartApp(t, app)
	defer stop()
	dlq, err := sub.Subscribe(context.Background(), topic+"_dlq")
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Publish(context.Background(), Invoiced{ID: "ok"}, Invoiced{ID: "poison"}); err != nil {
		t.Fatal(err)
	}
	select {
	case dead := <-dlq:
		dead.Ack()
		f, _ := middleware.FaultOf(dead.Metadata)
		if f.Topic != topic || f.Attempts != 1 {
			t.Errorf("dead letter fault = %+v, want topic %s and 1 attempt", f, topic)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no dead letter on " + topic + "_dlq")
	}
	testenv.WaitFor(t, 10*time.Second, "the good message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return handled["ok"] == 1
	})
}

// WithTopicFunc alone keeps the default dead-letter and reply names;
// FuncTopics fills what it is not given from DefaultTopics.
func TestTopicNamings(t *testing.T) {
	cases := []struct {
		n                   router.TopicNaming
		topic, dlq, replies string
	}{
		{router.DefaultTopics{}, "billing.invoiced", "billing.invoiced.dlq", "hexeract.replies.x"},
		{router.UnderscoreTopics{}, "billing_invoiced", "billing_invoiced_dlq", "hexeract_replies_x"},
		{router.FuncTopics{TopicOf: func(s string) string { return "prod." + s }}, "prod.billing.invoiced", "prod.billing.invoiced.dlq", "hexeract.replies.x"},
	}
	for _, c := range cases {
		topic := c.n.Topic("billing.invoiced")
		if topic != c.topic || c.n.DeadLetterTopic(topic) != c.dlq || c.n.ReplyTopic("x") != c.replies {
			t.Errorf("%T: %s %s %s, want %s %s %s", c.n, topic, c.n.DeadLetterTopic(topic), c.n.ReplyTopic("x"), c.topic, c.dlq, c.replies)
		}
	}
}

// In an App, Watermill's Retry added with Use runs inside the default
// chain: the dead letter counts its handler calls (the App wraps each
// handler in middleware.CountCalls).
func TestAppCountsWatermillRetryCalls(t *testing.T) {
	bus := newBusForCount(t)
	app, err := hexeract.New(hexeract.WithPubSub(bus, bus),
		hexeract.WithDefaultMiddleware(func(c *middleware.DefaultConfig) { c.Retry.MaxAttempts = 1 }))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	app.Use(wmmiddleware.Retry{MaxRetries: 2, InitialInterval: 10 * time.Millisecond}.Middleware)
	var calls atomic.Int32
	if err := hexeract.HandleFunc(app, func(context.Context, Invoiced) error {
		calls.Add(1)
		return errors.New("ledger down")
	}); err != nil {
		t.Fatal(err)
	}
	dlq, err := bus.Subscribe(context.Background(), "billing.invoiced.dlq")
	if err != nil {
		t.Fatal(err)
	}
	stop := testenv.StartApp(t, app)
	defer stop()
	if err := app.Publish(context.Background(), Invoiced{ID: "1"}); err != nil {
		t.Fatal(err)
	}
	select {
	case dead := <-dlq:
		dead.Ack()
		f, _ := middleware.FaultOf(dead.Metadata)
		if f.Attempts != 3 || calls.Load() != 3 || !f.FirstFailure.Before(f.LastFailure) {
			t.Fatalf("fault %+v after %d calls; want 3 attempts and first failure before last", f, calls.Load())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no dead letter")
	}
}

func newBusForCount(t testing.TB) *gochannel.PubSub {
	ps := gochannel.New(gochannel.Config{}, nil)
	t.Cleanup(func() { _ = ps.Close() })
	return ps
}

// A publisher-only App on watermill-nats with AutoProvision: the publish
// error says what to change.
func TestPublishErrorNamesTheTopicFix(t *testing.T) {
	pub, _ := wmNATS(t, "pubonly"+testenv.Suffix())
	app, err := hexeract.New(hexeract.WithPublisher(pub))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	err = app.Publish(context.Background(), Invoiced{ID: "1"})
	if err == nil || !strings.Contains(err.Error(), "hexeract.UnderscoreTopics") {
		t.Fatalf("Publish error = %v, want one naming the fix", err)
	}
}
