package hexeract_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters/mem"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
)

// effects counts, per handler, which replica applied each message.
type effects struct {
	mu  sync.Mutex
	by  map[string]map[int]map[string]int // handler -> seq -> replica -> calls
	all atomic.Int64
}

func newEffects() *effects { return &effects{by: map[string]map[int]map[string]int{}} }

func (e *effects) record(handler string, seq int, replica string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	h := e.by[handler]
	if h == nil {
		h = map[int]map[string]int{}
		e.by[handler] = h
	}
	if h[seq] == nil {
		h[seq] = map[string]int{}
	}
	h[seq][replica]++
	e.all.Add(1)
}

// distinct returns how many messages handler applied.
func (e *effects) distinct(handler string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.by[handler])
}

// TestEveryHandlerOfATypeGetsEveryMessage is the bus's first rule in memory:
// two handlers of one message type, in each of two replicas of one App
// (same consumer group): each handler applies all 1,000 messages, and no
// message is applied by both replicas for the same handler.
func TestEveryHandlerOfATypeGetsEveryMessage(t *testing.T) {
	const n = 1000
	broker := mem.New(mem.Config{})
	t.Cleanup(func() { _ = broker.Close() })
	fx := newEffects()
	var apps []*hexeract.App
	for _, replica := range []string{"r1", "r2"} {
		app, err := hexeract.New(hexeract.WithPubSub(broker.Publisher(), broker.Subscriber("orders-service")))
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range []string{"projection", "saga"} {
			err := hexeract.HandleFunc(app, func(_ context.Context, o OrderPlaced) error {
				fx.record(h, o.Total, replica)
				return nil
			}, hexeract.WithName(h))
			if err != nil {
				t.Fatal(err)
			}
		}
		testenv.StartApp(t, app)
		apps = append(apps, app)
	}
	for i := range n {
		if err := apps[i%2].Publish(context.Background(), OrderPlaced{OrderID: fmt.Sprint(i), Total: i}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 30*time.Second, "both handlers applied every message", func() bool {
		return fx.distinct("projection") == n && fx.distinct("saga") == n
	})
	fx.mu.Lock()
	defer fx.mu.Unlock()
	for h, seqs := range fx.by {
		replicas := map[string]int{}
		for seq, by := range seqs {
			if len(by) != 1 {
				t.Errorf("%s: message %d applied by %d replicas (%v), want 1", h, seq, len(by), by)
			}
			for r, calls := range by {
				replicas[r]++
				if calls != 1 {
					t.Errorf("%s: message %d applied %d times by %s", h, seq, calls, r)
				}
			}
		}
		if replicas["r1"] == 0 || replicas["r2"] == 0 {
			t.Errorf("%s: replicas did not share the work: %v", h, replicas)
		}
	}
}

// A handler that fails is handed its message again without running the
// handlers that succeeded: with no retry middleware, the nack reaches the
// App's dispatch, which resends the copy to the failing handler only.
func TestOneHandlersFailureDoesNotRerunTheOthers(t *testing.T) {
	app, err := hexeract.New(hexeract.WithoutDefaultMiddleware())
	if err != nil {
		t.Fatal(err)
	}
	var ok, flaky atomic.Int64
	must(t, hexeract.HandleFunc(app, func(context.Context, UserRegistered) error {
		ok.Add(1)
		return nil
	}, hexeract.WithName("welcome-mail")))
	must(t, hexeract.HandleFunc(app, func(context.Context, UserRegistered) error {
		if flaky.Add(1) <= 3 {
			return errors.New("crm down")
		}
		return nil
	}, hexeract.WithName("crm-sync")))
	testenv.StartApp(t, app)
	must(t, app.Publish(context.Background(), UserRegistered{UserID: "u-1"}))
	testenv.WaitFor(t, 10*time.Second, "crm-sync succeeded", func() bool { return flaky.Load() == 4 })
	time.Sleep(100 * time.Millisecond) // a wrong redelivery to welcome-mail would show by now
	if got := ok.Load(); got != 1 {
		t.Fatalf("welcome-mail ran %d times, want 1: a failure of crm-sync must not run it again", got)
	}
}

// When every handler nacks, the transport's message is nacked, so the
// transport (here the in-memory broker) redelivers it.
func TestEveryHandlerFailingNacksTheTransportMessage(t *testing.T) {
	broker := mem.New(mem.Config{})
	t.Cleanup(func() { _ = broker.Close() })
	app, err := hexeract.New(hexeract.WithPubSub(broker.Publisher(), broker.Subscriber("g")), hexeract.WithoutDefaultMiddleware())
	if err != nil {
		t.Fatal(err)
	}
	var calls [2]atomic.Int64
	for i, name := range []string{"a", "b"} {
		must(t, hexeract.HandleFunc(app, func(context.Context, UserRegistered) error {
			if calls[i].Add(1) == 1 {
				return errors.New("first delivery fails")
			}
			return nil
		}, hexeract.WithName(name)))
	}
	testenv.StartApp(t, app)
	must(t, app.Publish(context.Background(), UserRegistered{UserID: "u-1"}))
	testenv.WaitFor(t, 10*time.Second, "both handlers succeeded on the redelivery", func() bool {
		return calls[0].Load() == 2 && calls[1].Load() == 2
	})
}

type invoiceSent struct {
	InvoiceID string `json:"invoice_id"`
}

func (invoiceSent) MessageType() string { return "billing.invoice_sent" }

type invoicePaid struct {
	InvoiceID string `json:"invoice_id"`
}

func (invoicePaid) MessageType() string { return "billing.invoice_paid" }

// Handlers of different types sharing a topic each get their own type; a
// type no handler takes is dead-lettered once, not once per handler.
func TestHandlersOfATopicGetTheirOwnTypes(t *testing.T) {
	app, err := hexeract.New()
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan string, 10)
	paid := make(chan string, 10)
	must(t, hexeract.HandleFunc(app, func(_ context.Context, m invoiceSent) error {
		sent <- m.InvoiceID
		return nil
	}, hexeract.WithTopic("billing")))
	must(t, hexeract.HandleFunc(app, func(_ context.Context, m invoicePaid) error {
		paid <- m.InvoiceID
		return nil
	}, hexeract.WithTopic("billing")))
	var dead atomic.Int64
	must(t, app.AddHandler("dlq-watch", "billing.dlq", func(msg *message.Message) error {
		dead.Add(1)
		if f, _ := middleware.FaultOf(msg.Metadata); !strings.Contains(f.Error, "billing.refunded") {
			t.Errorf("dead letter fault %q does not name the unknown type", f.Error)
		}
		return nil
	}))
	testenv.StartApp(t, app)
	pub := func(typ, id string) {
		m := message.NewMessage(router.NewID(), []byte(`{"invoice_id":"`+id+`"}`))
		m.Metadata.Set(router.KeyType, typ)
		must(t, app.Publisher().Publish("billing", m))
	}
	// A CloudEvents structured event carries its type in the body, not in
	// ce_type: it is routed by that type and reaches its handler whole.
	pubStructured := func(typ, id string) {
		m := message.NewMessage(router.NewID(), []byte(`{"specversion":"1.0","id":"`+id+`","source":"/node","type":"`+typ+`","data":{"invoice_id":"`+id+`"}}`))
		m.Metadata.Set(router.KeyContentType, router.ContentTypeCloudEvents)
		must(t, app.Publisher().Publish("billing", m))
	}
	pub("billing.invoice_sent", "i-1")
	pub("billing.invoice_paid", "i-2")
	pub("billing.refunded", "i-3")
	if got := recv(t, sent); got != "i-1" {
		t.Errorf("sent handler got %s", got)
	}
	if got := recv(t, paid); got != "i-2" {
		t.Errorf("paid handler got %s", got)
	}
	pubStructured("billing.invoice_paid", "s-1")
	pubStructured("billing.invoice_sent", "s-2")
	if got := recv(t, paid); got != "s-1" {
		t.Errorf("paid handler got %s for a structured event", got)
	}
	if got := recv(t, sent); got != "s-2" {
		t.Errorf("sent handler got %s for a structured event", got)
	}
	testenv.WaitFor(t, 10*time.Second, "the unknown type dead-lettered", func() bool { return dead.Load() >= 1 })
	time.Sleep(100 * time.Millisecond)
	if d := dead.Load(); d != 1 {
		t.Errorf("%d dead letters for one message of an unknown type, want 1", d)
	}
	select {
	case x := <-sent:
		t.Errorf("sent handler got another message %s", x)
	case x := <-paid:
		t.Errorf("paid handler got another message %s", x)
	default:
	}
}

// endingSubscriber closes the subscription of one topic at once.
type endingSubscriber struct {
	message.Subscriber
	topic string
}

func (s endingSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if topic == s.topic {
		ch := make(chan *message.Message)
		go func() {
			time.Sleep(50 * time.Millisecond)
			close(ch)
		}()
		return ch, nil
	}
	return s.Subscriber.Subscribe(ctx, topic)
}

// One subscription that the transport ends on its own stops the App with an
// error naming the topic, though the App's other subscriptions still run.
func TestASubscriptionThatEndsStopsRun(t *testing.T) {
	broker := mem.New(mem.Config{})
	t.Cleanup(func() { _ = broker.Close() })
	app, err := hexeract.New(hexeract.WithPubSub(broker.Publisher(), endingSubscriber{broker.Subscriber("g"), "orders.placed"}))
	if err != nil {
		t.Fatal(err)
	}
	must(t, hexeract.HandleFunc(app, noop))
	must(t, hexeract.HandleFunc(app, func(context.Context, OrderPlaced) error { return nil }))
	done := make(chan error, 1)
	go func() { done <- app.Run(context.Background()) }()
	select {
	case err := <-done:
		if !errors.Is(err, hexeract.ErrRouterStopped) || !strings.Contains(err.Error(), `"orders.placed"`) {
			t.Fatalf("Run = %v, want ErrRouterStopped naming orders.placed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after a subscription ended")
	}
}

// On shutdown the handler in flight finishes and its message is
// acknowledged; the messages received but not yet handled are given back to
// the transport at once.
func TestShutdownFinishesInFlightAndGivesBackTheRest(t *testing.T) {
	broker := mem.New(mem.Config{})
	t.Cleanup(func() { _ = broker.Close() })
	sub := broker.Subscriber("g")
	must(t, sub.SubscribeInitialize("users.registered"))
	app, err := hexeract.New(hexeract.WithPubSub(broker.Publisher(), sub))
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	release := make(chan struct{})
	var handled atomic.Int64
	must(t, hexeract.HandleFunc(app, func(_ context.Context, u UserRegistered) error {
		if u.UserID == "u-0" {
			close(started)
			<-release
		}
		handled.Add(1)
		return nil
	}))
	stop := testenv.StartApp(t, app)
	for i := range 5 {
		must(t, app.Publish(context.Background(), UserRegistered{UserID: fmt.Sprint("u-", i)}))
	}
	<-started
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	time.Sleep(100 * time.Millisecond)
	close(release)
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if h := handled.Load(); h != 1 {
		t.Fatalf("%d messages handled, want only the one in flight", h)
	}
	if p := broker.Pending("users.registered", "g"); p != 4 {
		t.Fatalf("%d messages back in the queue after shutdown, want 4", p)
	}
}

// A CloudEvents structured batch of three events reaches the typed handler
// as three messages, each with its own envelope.
func TestStructuredBatchYieldsOneMessagePerEvent(t *testing.T) {
	app, err := hexeract.New()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan router.Envelope, 3)
	must(t, hexeract.HandleFunc(app, func(ctx context.Context, u UserRegistered) error {
		env, _ := router.EnvelopeFrom(ctx)
		if u.UserID != "u"+strings.TrimPrefix(env.ID, "b") {
			t.Errorf("event %s carried user %q", env.ID, u.UserID)
		}
		got <- env
		return nil
	}))
	testenv.StartApp(t, app)
	var events []string
	for i := 1; i <= 3; i++ {
		events = append(events, fmt.Sprintf(`{"specversion":"1.0","id":"b-%d","source":"/batcher","type":"users.registered","data":{"user_id":"u-%d"}}`, i, i))
	}
	m := message.NewMessage(router.NewID(), []byte("["+strings.Join(events, ",")+"]"))
	m.Metadata.Set(router.KeyContentType, "application/cloudevents-batch+json")
	must(t, app.Publisher().Publish("users.registered", m))
	seen := map[string]bool{}
	for range 3 {
		env := recv(t, got)
		seen[env.ID] = true
		if env.Source != "/batcher" {
			t.Errorf("event %s source %q", env.ID, env.Source)
		}
	}
	if len(seen) != 3 {
		t.Fatalf("events handled: %v, want b-1, b-2, b-3", seen)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A message its transport could not unmarshal is dead-lettered once, with
// its cause, though it names a type that two handlers of the topic take and
// a batch content type: it is neither shared nor expanded.
func TestAnUndecodableMessageIsDeadLetteredOnce(t *testing.T) {
	app, err := hexeract.New()
	if err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int64
	for _, name := range []string{"a", "b"} {
		must(t, hexeract.HandleFunc(app, func(context.Context, invoiceSent) error {
			handled.Add(1)
			return nil
		}, hexeract.WithTopic("billing"), hexeract.WithName(name)))
	}
	var dead atomic.Int64
	must(t, app.AddHandler("dlq-watch", "billing.dlq", func(msg *message.Message) error {
		dead.Add(1)
		if f, _ := middleware.FaultOf(msg.Metadata); !strings.Contains(f.Error, "checksum mismatch") {
			t.Errorf("dead letter fault %q does not name the cause", f.Error)
		}
		return nil
	}))
	testenv.StartApp(t, app)
	bad := router.NewUndecodable("", []byte(`[{"specversion":"1.0","id":"x","source":"s","type":"billing.invoice_sent"}]`),
		message.Metadata{router.KeyType: "billing.invoice_sent", router.KeyContentType: router.ContentTypeCloudEventsBatch}, "checksum mismatch")
	must(t, app.Publisher().Publish("billing", bad))
	testenv.WaitFor(t, 10*time.Second, "the undecodable message dead-lettered", func() bool { return dead.Load() >= 1 })
	time.Sleep(200 * time.Millisecond)
	if d, h := dead.Load(), handled.Load(); d != 1 || h != 0 {
		t.Errorf("%d dead letters and %d handler calls, want 1 and 0", d, h)
	}
}
