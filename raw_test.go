package hexeract_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
)

// A raw Watermill producer: a JSON body, a UUID, no CloudEvents envelope.
func rawMessage(id, body string) *message.Message {
	m := message.NewMessage(id, []byte(body))
	m.Metadata.Set("x-legacy", "yes")
	return m
}

// A typed handler added with WithAcceptRaw takes raw messages of its topic as
// its type, with the Watermill UUID as id; without it (the default) a raw
// message is dead-lettered as missing its type.
func TestWithAcceptRaw(t *testing.T) {
	bus := newBusForCount(t)
	app, err := hexeract.New(hexeract.WithPubSub(bus, bus))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	type seen struct {
		id, typ, assumed string
		inv              Invoiced
	}
	got := make(chan seen, 4)
	err = hexeract.HandleFunc(app, func(ctx context.Context, inv Invoiced) error {
		env, _ := router.EnvelopeFrom(ctx)
		got <- seen{env.ID, env.Type, env.Metadata.Get(router.KeyAssumedType), inv}
		return nil
	}, hexeract.WithAcceptRaw())
	if err != nil {
		t.Fatal(err)
	}
	// The same type on another topic, without WithAcceptRaw.
	strict := make(chan string, 1)
	if err := hexeract.HandleFunc(app, func(ctx context.Context, inv Invoiced) error { strict <- inv.ID; return nil },
		hexeract.WithName("strict"), hexeract.WithTopic("strict.invoices")); err != nil {
		t.Fatal(err)
	}
	dlq, err := bus.Subscribe(context.Background(), "strict.invoices.dlq")
	if err != nil {
		t.Fatal(err)
	}
	stop := testenv.StartApp(t, app)
	defer stop()

	if err := bus.Publish("billing.invoiced", rawMessage("raw-1", `{"id":"inv-1"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s.id != "raw-1" || s.typ != "billing.invoiced" || s.assumed != "true" || s.inv.ID != "inv-1" {
			t.Fatalf("handled %+v, want id raw-1, type billing.invoiced, assumed, body inv-1", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the raw message was not handled")
	}
	// Typed messages still go through as before.
	if err := app.Publish(context.Background(), Invoiced{ID: "inv-2"}); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s.inv.ID != "inv-2" || s.assumed != "" {
			t.Fatalf("typed message handled as %+v", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the typed message was not handled")
	}
	if err := bus.Publish("strict.invoices", rawMessage("raw-2", `{"id":"inv-3"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case dead := <-dlq:
		dead.Ack()
		if f, _ := middleware.FaultOf(dead.Metadata); !strings.Contains(f.Error, "ce_type") {
			t.Fatalf("dead letter fault %q, want the missing ce_type", f.Error)
		}
	case id := <-strict:
		t.Fatalf("handler without WithAcceptRaw took raw message %s", id)
	case <-time.After(10 * time.Second):
		t.Fatal("raw message on the strict topic not dead-lettered")
	}
}

// WithRawMessages maps a topic's raw messages to a type: every typed
// handler of that type and every raw handler of the topic receive each.
func TestWithRawMessages(t *testing.T) {
	bus := newBusForCount(t)
	app, err := hexeract.New(hexeract.WithPubSub(bus, bus), hexeract.WithRawMessages("legacy_invoices", "billing.invoiced"))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	var mu sync.Mutex
	seen := map[string]int{}
	note := func(k string) { mu.Lock(); seen[k]++; mu.Unlock() }
	if err := hexeract.HandleFunc(app, func(_ context.Context, inv Invoiced) error { note("typed:" + inv.ID); return nil },
		hexeract.WithTopic("legacy_invoices")); err != nil {
		t.Fatal(err)
	}
	if err := app.AddHandler("audit", "legacy_invoices", func(m *message.Message) error { note("raw:" + m.UUID); return nil }); err != nil {
		t.Fatal(err)
	}
	stop := testenv.StartApp(t, app)
	defer stop()
	for i, id := range []string{"a", "b", "c"} {
		if err := bus.Publish("legacy_invoices", rawMessage(watermill.NewUUID(), `{"id":"`+id+`"}`)); err != nil {
			t.Fatal(i, err)
		}
	}
	testenv.WaitFor(t, 10*time.Second, "three typed and three raw deliveries", func() bool {
		mu.Lock()
		defer mu.Unlock()
		raw := 0
		for k, n := range seen {
			if strings.HasPrefix(k, "raw:") {
				raw += n
			}
		}
		return seen["typed:a"] == 1 && seen["typed:b"] == 1 && seen["typed:c"] == 1 && raw == 3
	})
}

func TestRawMessagesConflicts(t *testing.T) {
	if _, err := hexeract.New(hexeract.WithRawMessages("t", "a.b"), hexeract.WithRawMessages("t", "c.d")); err == nil || !strings.Contains(err.Error(), `"t"`) {
		t.Fatalf("New with two types for one topic: %v", err)
	}
	app, err := hexeract.New(hexeract.WithRawMessages("billing.invoiced", "other.type"))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	err = hexeract.HandleFunc(app, func(context.Context, Invoiced) error { return nil }, hexeract.WithAcceptRaw())
	if err == nil || !strings.Contains(err.Error(), "other.type") {
		t.Fatalf("WithAcceptRaw on a topic mapped to another type: %v", err)
	}
}

// On a plain Watermill router, router.AssumeType lets a typed handler
// function accept raw messages.
func TestAssumeTypeOnPlainRouter(t *testing.T) {
	bus := newBusForCount(t)
	got := make(chan string, 1)
	fn, err := router.NewHandlerFunc(router.HandlerFunc[Invoiced](func(ctx context.Context, inv Invoiced) error {
		env, _ := router.EnvelopeFrom(ctx)
		got <- env.ID + " " + inv.ID
		return nil
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	r.AddConsumerHandler("invoices", "legacy", bus, fn).AddMiddleware(router.AssumeType("billing.invoiced"))
	stop := testenv.StartApp(t, plainRouter{r})
	defer stop()
	if err := bus.Publish("legacy", rawMessage("u-1", `{"id":"i-1"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != "u-1 i-1" {
			t.Fatalf("handled %q, want u-1 i-1", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("not handled")
	}
}

// plainRouter adapts a Watermill router to testenv.App.
type plainRouter struct{ *message.Router }

func (r plainRouter) Running() <-chan struct{} { return r.Router.Running() }

// A raw handler that returns messages, added with AddPublisherHandler, runs
// in the default chain: what it returns is published with the incoming
// correlation and causation, its failures are retried and dead-lettered.
func TestAddPublisherHandler(t *testing.T) {
	bus := newBusForCount(t)
	app, err := hexeract.New(hexeract.WithPubSub(bus, bus),
		hexeract.WithDefaultMiddleware(func(c *middleware.DefaultConfig) {
			c.Retry.MaxAttempts = 2
			c.Retry.InitialInterval = time.Millisecond
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	var mu sync.Mutex
	calls := map[string]int{}
	err = app.AddPublisherHandler("enrich", "raw_in", "raw_out", func(m *message.Message) ([]*message.Message, error) {
		mu.Lock()
		calls[m.UUID]++
		mu.Unlock()
		if string(m.Payload) == "poison" {
			return []*message.Message{message.NewMessage(watermill.NewUUID(), []byte("dropped"))}, errors.New("cannot enrich")
		}
		return []*message.Message{message.NewMessage(watermill.NewUUID(), append([]byte("enriched "), m.Payload...))}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := bus.Subscribe(context.Background(), "raw_out")
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := bus.Subscribe(context.Background(), "raw_in.dlq")
	if err != nil {
		t.Fatal(err)
	}
	stop := testenv.StartApp(t, app)
	defer stop()
	in := message.NewMessage("in-1", []byte("order"))
	in.Metadata.Set(router.KeyCorrelationID, "corr-7")
	if err := bus.Publish("raw_in", in, message.NewMessage("in-2", []byte("poison"))); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-out:
		m.Ack()
		if string(m.Payload) != "enriched order" || m.Metadata.Get(router.KeyCorrelationID) != "corr-7" || m.Metadata.Get(router.KeyCausationID) != "in-1" {
			t.Fatalf("published %q with %v", m.Payload, m.Metadata)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing published")
	}
	select {
	case d := <-dlq:
		d.Ack()
		if f, _ := middleware.FaultOf(d.Metadata); d.UUID != "in-2" || f.Attempts != 2 {
			t.Fatalf("dead letter %s with %+v, want in-2 after 2 attempts", d.UUID, f)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("poison not dead-lettered")
	}
	select {
	case m := <-out:
		t.Fatalf("a failed attempt's message was published: %q", m.Payload)
	case <-time.After(200 * time.Millisecond):
	}
	if err := app.AddPublisherHandler("x", "a", "", func(*message.Message) ([]*message.Message, error) { return nil, nil }); err == nil {
		t.Error("AddPublisherHandler accepted an empty publish topic")
	}
}
