package saga_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hexeract/hexeract/store/postgres"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	amqp091 "github.com/rabbitmq/amqp091-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hexeract/hexeract"
	adamqp "github.com/hexeract/hexeract/adapters/amqp"
	"github.com/hexeract/hexeract/adapters/gochannel"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/saga"
	"github.com/hexeract/hexeract/scheduler"
)

type TracedOrderPlaced struct{ ID string }

func (TracedOrderPlaced) MessageType() string { return "test.trace.order_placed" }

type TracedPaymentDue struct{ ID string }

func (TracedPaymentDue) MessageType() string { return "test.trace.payment_due" }

type TracedReleaseStock struct{ ID string }

func (TracedReleaseStock) MessageType() string { return "test.trace.release_stock" }

type tracedOrder struct{ ID string }

// TestOneTraceFromTheEdgeToTheLastStep follows one order through
// PostgreSQL (outbox, saga store, scheduler) and the in-memory transport:
// an HTTP handler span writes the order through the outbox; the relay
// publishes it; the saga starts, reserves a compensation and schedules a
// payment timeout; the timeout fires and fails the saga, which runs its
// compensation. Every span is in the HTTP span's trace, and the tree is
//
//	POST /orders
//	└ create test.trace.order_placed         (outbox)
//	  ├ publish test.trace.order_placed      (relay; also linked)
//	  └ send → process test.trace.order_placed
//	    └ saga order test.trace.order_placed
//	      └ create hexeract.saga.timeout     (scheduler)
//	        └ create hexeract.saga.timeout   (outbox, at the hand-off)
//	          └ send → process hexeract.saga.timeout
//	            └ saga order test.trace.payment_due
//	              └ create hexeract.saga.compensate (outbox)
//	                └ send → process hexeract.saga.compensate
//	                  └ saga order test.trace.release_stock
func TestOneTraceFromTheEdgeToTheLastStep(t *testing.T) {
	t.Run("memory-transport", func(t *testing.T) {
		ps := gochannel.New(gochannel.Config{Buffer: 64}, nil)
		t.Cleanup(func() { _ = ps.Close() })
		traceTree(t, ps, ps, func(s string) string { return s })
	})
	t.Run("rabbitmq", func(t *testing.T) {
		url := testenv.AMQPURL(t)
		sfx := testenv.Suffix()
		topic := func(s string) string { return s + "_" + sfx }
		cfg := adamqp.Config{URL: url, Group: "traces_" + sfx}
		pub, sub, err := adamqp.New(cfg, nil)
		must(t, err)
		t.Cleanup(func() {
			_ = sub.Close()
			_ = pub.Close()
			conn, err := amqp091.Dial(url)
			if err != nil {
				return
			}
			defer conn.Close()
			ch, err := conn.Channel()
			if err != nil {
				return
			}
			defer ch.Close()
			for _, name := range []string{(TracedOrderPlaced{}).MessageType(), "hexeract.saga.timeout", "hexeract.saga.compensate"} {
				for _, q := range []string{topic(name), topic(name) + ".dlq"} {
					_, _ = ch.QueueDelete(adamqp.QueueName(q, cfg.Group), false, false, false)
					_ = ch.ExchangeDelete(q, false, false)
				}
			}
		})
		traceTree(t, pub, sub, topic)
	})
}

// traceTree runs the order of TestOneTraceFromTheEdgeToTheLastStep on the
// transport pub/sub, whose topics are topic(wire name), and checks the tree.
func traceTree(t *testing.T, pub message.Publisher, sub message.Subscriber, topic func(string) string) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	f := newFixture(t, true)
	ob, err := outbox.New(postgres.New(f.pool), outbox.WithTable(f.tables.outbox), outbox.WithTracerProvider(tp), outbox.WithTopicFunc(topic))
	must(t, err)
	sched, err := scheduler.New(postgres.New(f.pool), ob, scheduler.WithTable(f.tables.sched), scheduler.WithLogger(quietLogger()),
		scheduler.WithTracerProvider(tp), scheduler.WithTopicFunc(topic))
	must(t, err)
	must(t, sched.Migrate(context.Background()))

	tracing := middleware.TracingOptions{TracerProvider: tp}
	relay, err := outbox.NewRelay(postgres.New(f.pool), middleware.TracingPublisher(pub, tracing), outbox.WithTable(f.tables.outbox),
		outbox.WithLogger(quietLogger()), outbox.WithPollInterval(100*time.Millisecond), outbox.WithTracerProvider(tp))
	must(t, err)
	app, err := hexeract.New(hexeract.WithPubSub(pub, sub), hexeract.WithLogger(quietLogger()), hexeract.WithTopicFunc(topic),
		hexeract.WithWorker(relay), hexeract.WithWorker(sched),
		hexeract.WithDefaultMiddleware(func(c *middleware.DefaultConfig) { c.Tracing = tracing }))
	must(t, err)
	t.Cleanup(func() { _ = app.Close() })

	var compensated atomic.Bool
	def := saga.Define[tracedOrder]("order")
	saga.StartedBy(def, func(e TracedOrderPlaced) string { return e.ID }, func(c *saga.Context[tracedOrder], s *tracedOrder, e TracedOrderPlaced) error {
		s.ID = e.ID
		c.Compensate(TracedReleaseStock{ID: e.ID})
		c.Timeout(50*time.Millisecond, TracedPaymentDue{ID: e.ID})
		return nil
	})
	saga.OnTimeout(def, func(c *saga.Context[tracedOrder], s *tracedOrder, _ TracedPaymentDue) error {
		c.Fail(errors.New("payment not received"))
		return nil
	})
	saga.OnCompensate(def, func(c *saga.Context[tracedOrder], s *tracedOrder, _ TracedReleaseStock) error {
		compensated.Store(true)
		return nil
	})
	must(t, saga.Register(app, def, f.store, saga.WithOutbox(ob), saga.WithScheduler(sched),
		saga.WithLogger(quietLogger()), saga.WithTracerProvider(tp)))
	testenv.StartApp(t, app)

	// The edge: an HTTP handler writes the order through the outbox.
	var edge trace.SpanContext
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, span := tp.Tracer("http").Start(r.Context(), "POST /orders", trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		edge = span.SpanContext()
		err := ob.InTx(ctx, func(_ context.Context, tx pgx.Tx) error {
			_, err := ob.Publish(ctx, tx, TracedOrderPlaced{ID: "o-1"})
			return err
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/orders", "application/json", nil)
	must(t, err)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /orders: %s", resp.Status)
	}
	eventually(t, 15*time.Second, "the compensation ran", compensated.Load)

	// The compensation's transition span ends after its handler returned.
	var spans []sdktrace.ReadOnlySpan
	eventually(t, 5*time.Second, "the last step's span ended", func() bool {
		spans = rec.Ended()
		for _, s := range spans {
			if s.Name() == "saga order "+(TracedReleaseStock{}).MessageType() {
				return true
			}
		}
		return false
	})
	tree := newSpanTree(spans)
	for _, s := range spans {
		if s.SpanContext().TraceID() != edge.TraceID() {
			t.Errorf("span %q is in trace %s, not the edge's %s", s.Name(), s.SpanContext().TraceID(), edge.TraceID())
		}
	}

	// The path from the edge to the last step, each span a descendant of
	// the one before.
	timeoutTopic, compTopic := topic("hexeract.saga.timeout"), topic("hexeract.saga.compensate")
	placed := topic(TracedOrderPlaced{}.MessageType())
	steps := []struct {
		what string
		pick func(sdktrace.ReadOnlySpan) bool
	}{
		{"HTTP handler", named("POST /orders")},
		{"outbox create", both(named("create "+placed), hasAttr("outbox.table"))},
		{"consumer process", named("process " + placed)},
		{"saga step", named("saga order " + (TracedOrderPlaced{}).MessageType())},
		{"scheduled timeout (scheduler create)", both(named("create "+timeoutTopic), hasAttr("scheduler.table"))},
		{"timeout hand-off (outbox create)", both(named("create "+timeoutTopic), hasAttr("outbox.table"))},
		{"timeout process", named("process " + timeoutTopic)},
		{"saga timeout step", named("saga order " + TracedPaymentDue{}.MessageType())},
		{"compensation (outbox create)", both(named("create "+compTopic), hasAttr("outbox.table"))},
		{"compensation process", named("process " + compTopic)},
		{"saga compensation step", named("saga order " + TracedReleaseStock{}.MessageType())},
	}
	var prev sdktrace.ReadOnlySpan
	for i, st := range steps {
		s := tree.find(t, st.what, st.pick)
		if i == 0 {
			if s.SpanContext().SpanID() != edge.SpanID() {
				t.Fatalf("the edge span is not the HTTP handler's")
			}
		} else if !tree.descends(s, prev) {
			t.Errorf("%s (%q) does not descend from %s (%q); its ancestors: %v", st.what, s.Name(), steps[i-1].what, prev.Name(), tree.ancestors(s))
		}
		prev = s
	}

	// The relay's batch span: "publish", linked to the creation context
	// and, the batch being one trace, its child.
	create := tree.find(t, "outbox create", both(named("create "+placed), hasAttr("outbox.table")))
	relaySpan := tree.find(t, "relay publish", named("publish "+placed))
	linked := false
	for _, l := range relaySpan.Links() {
		linked = linked || l.SpanContext.SpanID() == create.SpanContext().SpanID()
	}
	if !linked || relaySpan.Parent().SpanID() != create.SpanContext().SpanID() {
		t.Errorf("relay span: linked to the create span %v, parent %s (want %s)", linked, relaySpan.Parent().SpanID(), create.SpanContext().SpanID())
	}
	if relaySpan.SpanKind() != trace.SpanKindProducer || create.SpanKind() != trace.SpanKindProducer {
		t.Errorf("kinds: relay %v, create %v; want producer", relaySpan.SpanKind(), create.SpanKind())
	}
}

// TestOneTraceInMemorySaga: with the in-memory store, timeouts run on
// in-process timers and messages go through the App after the commit; the
// timeout and the compensation still continue the trace of the step that
// caused them.
func TestOneTraceInMemorySaga(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ps := gochannel.New(gochannel.Config{Buffer: 64}, nil)
	t.Cleanup(func() { _ = ps.Close() })
	app, err := hexeract.New(hexeract.WithPubSub(ps, ps), hexeract.WithLogger(quietLogger()),
		hexeract.WithDefaultMiddleware(func(c *middleware.DefaultConfig) { c.Tracing.TracerProvider = tp }))
	must(t, err)
	t.Cleanup(func() { _ = app.Close() })
	var compensated atomic.Bool
	def := saga.Define[tracedOrder]("order")
	saga.StartedBy(def, func(e TracedOrderPlaced) string { return e.ID }, func(c *saga.Context[tracedOrder], s *tracedOrder, e TracedOrderPlaced) error {
		c.Compensate(TracedReleaseStock{ID: e.ID})
		c.Timeout(20*time.Millisecond, TracedPaymentDue{ID: e.ID})
		return nil
	})
	saga.OnTimeout(def, func(c *saga.Context[tracedOrder], s *tracedOrder, _ TracedPaymentDue) error {
		c.Fail(errors.New("payment not received"))
		return nil
	})
	saga.OnCompensate(def, func(c *saga.Context[tracedOrder], s *tracedOrder, _ TracedReleaseStock) error {
		compensated.Store(true)
		return nil
	})
	must(t, saga.Register(app, def, saga.NewMemoryStore(), saga.WithLogger(quietLogger()), saga.WithTracerProvider(tp)))
	testenv.StartApp(t, app)
	ctx, root := tp.Tracer("test").Start(context.Background(), "checkout")
	must(t, app.Publish(ctx, TracedOrderPlaced{ID: "o-2"}))
	root.End()
	eventually(t, 10*time.Second, "the compensation ran", compensated.Load)
	last := "saga order " + (TracedReleaseStock{}).MessageType()
	var spans []sdktrace.ReadOnlySpan
	eventually(t, 5*time.Second, "the last step's span ended", func() bool {
		spans = rec.Ended()
		for _, s := range spans {
			if s.Name() == last {
				return true
			}
		}
		return false
	})
	tree := newSpanTree(spans)
	for _, s := range spans {
		if s.SpanContext().TraceID() != root.SpanContext().TraceID() {
			t.Errorf("span %q is in trace %s, not the caller's %s", s.Name(), s.SpanContext().TraceID(), root.SpanContext().TraceID())
		}
	}
	var prev sdktrace.ReadOnlySpan
	for _, name := range []string{"checkout", "saga order " + (TracedOrderPlaced{}).MessageType(), "send hexeract.saga.timeout",
		"saga order " + (TracedPaymentDue{}).MessageType(), "send hexeract.saga.compensate", last} {
		s := tree.find(t, name, named(name))
		if prev != nil && !tree.descends(s, prev) {
			t.Errorf("%q does not descend from %q; its ancestors: %v", name, prev.Name(), tree.ancestors(s))
		}
		prev = s
	}
}

type spanTree struct {
	spans []sdktrace.ReadOnlySpan
	byID  map[trace.SpanID]sdktrace.ReadOnlySpan
}

func newSpanTree(spans []sdktrace.ReadOnlySpan) *spanTree {
	t := &spanTree{spans: spans, byID: map[trace.SpanID]sdktrace.ReadOnlySpan{}}
	for _, s := range spans {
		t.byID[s.SpanContext().SpanID()] = s
	}
	return t
}

// find returns the one span pick accepts.
func (st *spanTree) find(t *testing.T, what string, pick func(sdktrace.ReadOnlySpan) bool) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, s := range st.spans {
		if pick(s) {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		var names []string
		for _, s := range st.spans {
			names = append(names, s.Name())
		}
		t.Fatalf("%d spans for %s, want 1; spans: %v", len(found), what, names)
	}
	return found[0]
}

// descends reports whether anc is a strict ancestor of s.
func (st *spanTree) descends(s, anc sdktrace.ReadOnlySpan) bool {
	for p := st.byID[s.Parent().SpanID()]; p != nil; p = st.byID[p.Parent().SpanID()] {
		if p.SpanContext().SpanID() == anc.SpanContext().SpanID() {
			return true
		}
	}
	return false
}

func (st *spanTree) ancestors(s sdktrace.ReadOnlySpan) []string {
	var out []string
	for p := st.byID[s.Parent().SpanID()]; p != nil; p = st.byID[p.Parent().SpanID()] {
		out = append(out, p.Name())
	}
	return out
}

func named(name string) func(sdktrace.ReadOnlySpan) bool {
	return func(s sdktrace.ReadOnlySpan) bool { return s.Name() == name }
}

func hasAttr(key string) func(sdktrace.ReadOnlySpan) bool {
	return func(s sdktrace.ReadOnlySpan) bool {
		for _, kv := range s.Attributes() {
			if string(kv.Key) == key {
				return true
			}
		}
		return false
	}
}

func both(a, b func(sdktrace.ReadOnlySpan) bool) func(sdktrace.ReadOnlySpan) bool {
	return func(s sdktrace.ReadOnlySpan) bool { return a(s) && b(s) }
}
