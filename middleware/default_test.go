package middleware_test

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
)

type telemetry struct {
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
}

func newTelemetry() *telemetry {
	rec := tracetest.NewSpanRecorder()
	reader := sdkmetric.NewManualReader()
	return &telemetry{
		spans:  rec,
		tp:     sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)),
		reader: reader,
		mp:     sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
	}
}

// newApp builds an App on its own GoChannel with the default chain, fast
// retries and the test's OpenTelemetry providers.
func newApp(t *testing.T, tel *telemetry) (*hexeract.App, *gochannel.GoChannel) {
	t.Helper()
	ps := newPubSub(t)
	app, err := hexeract.New(hexeract.WithPubSub(ps, ps), hexeract.WithDefaultMiddleware(func(c *middleware.DefaultConfig) {
		c.Retry.InitialInterval = time.Millisecond
		c.Retry.MaxAttempts = 3
		c.Logger = nil
		if tel != nil {
			c.Tracing.TracerProvider = tel.tp
			c.Metrics.MeterProvider = tel.mp
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Close() })
	return app, ps
}

// TestDefaultChainDeadLettersGarbageAndKeepsConsuming: garbage bytes, an
// unknown type, a message without a type and a message that makes the
// handler panic all end in users.registered.dlq with fault metadata; the
// good messages between them are all handled.
func TestDefaultChainDeadLettersGarbageAndKeepsConsuming(t *testing.T) {
	app, ps := newApp(t, nil)
	dlq := subscribe(t, ps, "users.registered.dlq")
	var handled atomic.Int32
	if err := hexeract.HandleFunc(app, func(ctx context.Context, ev UserRegistered) error {
		if ev.UserID == "panic" {
			var p *UserRegistered
			_ = p.UserID // nil dereference
		}
		handled.Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	testenv.StartApp(t, app)

	good := func(id string) *message.Message {
		return must(app.NewMessage(context.Background(), UserRegistered{UserID: id}))
	}
	garbage := message.NewMessage("garbage", []byte("\x00\xff{not json"))
	garbage.Metadata.Set(router.KeyType, "users.registered")
	unknown := message.NewMessage("unknown-type", []byte(`{"user_id":"x"}`))
	unknown.Metadata.Set(router.KeyType, "users.deleted")
	untyped := message.NewMessage("no-type", []byte(`{"user_id":"x"}`))
	panics := good("panic")
	panics.UUID = "panics"
	for _, m := range []*message.Message{good("1"), garbage, good("2"), unknown, good("3"), untyped, good("4"), panics, good("5")} {
		publish(t, ps, "users.registered", m)
	}
	faults := map[string]message.Metadata{}
	for range 4 {
		dl := recv(t, dlq)
		faults[dl.UUID] = dl.Metadata
	}
	deadline := time.Now().Add(5 * time.Second)
	for handled.Load() < 5 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if handled.Load() != 5 {
		t.Fatalf("handled %d good messages, want 5", handled.Load())
	}
	for id, want := range map[string]string{
		"garbage":      "invalid character",
		"unknown-type": `unexpected message type "users.deleted"`,
		"no-type":      "missing required attribute ce_type",
		"panics":       "panic: runtime error: invalid memory address or nil pointer dereference",
	} {
		md, ok := faults[id]
		if !ok {
			t.Errorf("%s not dead-lettered (got %v)", id, keys(faults))
			continue
		}
		if !strings.Contains(md.Get(router.KeyFaultError), want) {
			t.Errorf("%s: error %q does not contain %q", id, md.Get(router.KeyFaultError), want)
		}
		if md.Get(router.KeyFaultTopic) != "users.registered" || md.Get(router.KeyFaultHandler) != "users.registered" {
			t.Errorf("%s: topic/handler = %q/%q", id, md.Get(router.KeyFaultTopic), md.Get(router.KeyFaultHandler))
		}
	}
	if md := faults["garbage"]; md.Get(router.KeyFaultType) != "*router.DecodeError" || md.Get(router.KeyFaultAttempts) != "1" || md.Get(router.KeyFaultPermanent) != "true" {
		t.Errorf("decode error not dead-lettered at once as permanent: %v", md)
	}
	if md := faults["panics"]; md.Get(router.KeyFaultAttempts) != "3" || md.Get(router.KeyFaultStack) == "" {
		t.Errorf("panic: attempts %q, stack %q", md.Get(router.KeyFaultAttempts), md.Get(router.KeyFaultStack))
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestTracingAcrossTwoHops: request span → send users.registered →
// process users.registered → send welcome.sent → process welcome.sent, all in
// one trace, each span the parent of the next; messaging attributes set.
func TestTracingAcrossTwoHops(t *testing.T) {
	tel := newTelemetry()
	app, _ := newApp(t, tel)
	done := make(chan struct{})
	_ = hexeract.HandleFunc(app, func(ctx context.Context, ev UserRegistered) error {
		return app.Publish(ctx, WelcomeSent(ev))
	})
	_ = hexeract.HandleFunc(app, func(ctx context.Context, ev WelcomeSent) error {
		close(done)
		return nil
	})
	testenv.StartApp(t, app)
	ctx, root := tel.tp.Tracer("test").Start(context.Background(), "http request")
	if err := app.Publish(ctx, UserRegistered{UserID: "u1"}); err != nil {
		t.Fatal(err)
	}
	root.End()
	recv(t, done)
	spans := waitSpans(t, tel.spans, 5)
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Name()] = s
	}
	chain := []string{"http request", "send users.registered", "process users.registered", "send welcome.sent", "process welcome.sent"}
	for i, name := range chain {
		s, ok := byName[name]
		if !ok {
			t.Fatalf("no span %q; spans: %v", name, spanNames(spans))
		}
		if s.SpanContext().TraceID() != root.SpanContext().TraceID() {
			t.Errorf("%s is in another trace", name)
		}
		if i > 0 && s.Parent().SpanID() != byName[chain[i-1]].SpanContext().SpanID() {
			t.Errorf("parent of %q is not %q", name, chain[i-1])
		}
	}
	send, process := byName["send users.registered"], byName["process users.registered"]
	if send.SpanKind() != trace.SpanKindProducer || process.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("kinds: send %v, process %v", send.SpanKind(), process.SpanKind())
	}
	attrs := attrMap(process.Attributes())
	for k, want := range map[string]string{
		"messaging.system":           middleware.DefaultSystem,
		"messaging.destination.name": "users.registered",
		"messaging.operation.type":   "process",
		"messaging.operation.name":   "process",
		"hexeract.handler.name":      "users.registered",
	} {
		if attrs[k] != want {
			t.Errorf("process span %s = %q, want %q", k, attrs[k], want)
		}
	}
	if attrs["messaging.message.id"] == "" || attrs["messaging.message.conversation_id"] != attrs["messaging.message.id"] {
		t.Errorf("message id %q, conversation id %q (first message: correlation = own id)", attrs["messaging.message.id"], attrs["messaging.message.conversation_id"])
	}
	if a := attrMap(send.Attributes()); a["messaging.operation.type"] != "send" || a["messaging.destination.name"] != "users.registered" {
		t.Errorf("send span attributes %v", a)
	}
}

// TestTracingRecordsFailures: a dead-lettered message's consumer span has
// status Error, the exception event and the dead-letter topic; the retries
// are span events; the dead-letter publish is a child span.
func TestTracingRecordsFailures(t *testing.T) {
	tel := newTelemetry()
	app, ps := newApp(t, tel)
	dlq := subscribe(t, ps, "users.registered.dlq")
	_ = hexeract.HandleFunc(app, func(ctx context.Context, ev UserRegistered) error {
		return errors.New("smtp down")
	})
	testenv.StartApp(t, app)
	if err := app.Publish(context.Background(), UserRegistered{UserID: "u1"}); err != nil {
		t.Fatal(err)
	}
	dl := recv(t, dlq)
	spans := waitSpans(t, tel.spans, 3)
	var process, dlqSend sdktrace.ReadOnlySpan
	for _, s := range spans {
		switch s.Name() {
		case "process users.registered":
			process = s
		case "send users.registered.dlq":
			dlqSend = s
		}
	}
	if process == nil || dlqSend == nil {
		t.Fatalf("spans: %v", spanNames(spans))
	}
	if process.Status().Code != codes.Error || process.Status().Description != "smtp down" {
		t.Errorf("status = %+v", process.Status())
	}
	var exceptions, retries int
	for _, e := range process.Events() {
		switch e.Name {
		case "exception":
			exceptions++
		case "retry":
			retries++
		}
	}
	if exceptions != 1 || retries != 2 {
		t.Errorf("events: %d exception, %d retry; want 1 and 2", exceptions, retries)
	}
	if a := attrMap(process.Attributes()); a["hexeract.dead_letter.topic"] != "users.registered.dlq" || a["error.type"] != "*errors.errorString" {
		t.Errorf("attributes %v", a)
	}
	if dlqSend.Parent().SpanID() != process.SpanContext().SpanID() {
		t.Error("dead-letter publish span is not a child of the consumer span")
	}
	if !strings.Contains(dl.Metadata.Get("traceparent"), process.SpanContext().TraceID().String()) {
		t.Errorf("dead letter traceparent %q is not in the trace", dl.Metadata.Get("traceparent"))
	}
}

// TestMetricsCounted: one good message, one that succeeds on its second
// attempt and one dead-lettered after 3 attempts.
func TestMetricsCounted(t *testing.T) {
	tel := newTelemetry()
	app, ps := newApp(t, tel)
	dlq := subscribe(t, ps, "users.registered.dlq")
	var flaky atomic.Int32
	handled := make(chan string, 10)
	_ = hexeract.HandleFunc(app, func(ctx context.Context, ev UserRegistered) error {
		switch ev.UserID {
		case "flaky":
			if flaky.Add(1) == 1 {
				return errors.New("try again")
			}
		case "bad":
			return errors.New("never works")
		}
		handled <- ev.UserID
		return nil
	})
	testenv.StartApp(t, app)
	for _, id := range []string{"ok", "flaky", "bad"} {
		if err := app.Publish(context.Background(), UserRegistered{UserID: id}); err != nil {
			t.Fatal(err)
		}
	}
	recv(t, handled)
	recv(t, handled)
	recv(t, dlq)
	var got map[string]int64
	var durations uint64
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, durations = collect(t, tel.reader)
		// The instruments of one message are recorded one after the other:
		// wait for the last of them too.
		if (got[middleware.MetricConsumed] == 3 && got[middleware.MetricDeadLettered] == 1 && durations == 3) || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	for name, want := range map[string]int64{
		middleware.MetricConsumed:     3,
		middleware.MetricFailed:       1,
		middleware.MetricRetried:      3, // 1 for flaky, 2 for bad
		middleware.MetricDeadLettered: 1,
	} {
		if got[name] != want {
			t.Errorf("%s = %d, want %d", name, got[name], want)
		}
	}
	if durations != 3 {
		t.Errorf("%s count = %d, want 3", middleware.MetricDuration, durations)
	}
	if got["attrs"] != 1 {
		t.Errorf("metric attributes missing messaging.destination.name/system")
	}
}

// collect returns the sum of each counter, the histogram count, and
// attrs=1 when the consumed counter has the semantic-convention attributes.
func collect(t *testing.T, reader *sdkmetric.ManualReader) (map[string]int64, uint64) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	var count uint64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range data.DataPoints {
					out[m.Name] += dp.Value
					if m.Name == middleware.MetricConsumed {
						sys, _ := dp.Attributes.Value("messaging.system")
						dest, _ := dp.Attributes.Value("messaging.destination.name")
						if sys.AsString() == middleware.DefaultSystem && dest.AsString() == "users.registered" {
							out["attrs"] = 1
						}
					}
				}
			case metricdata.Histogram[float64]:
				for _, dp := range data.DataPoints {
					count += dp.Count
				}
			}
		}
	}
	return out, count
}

// TestCorrelationAndCausationAcrossTwoHops: A (published at the edge) → B
// (typed handler, App.Publish) → C (raw Watermill handler publishing a
// hand-built message through the App's publisher). All three share A's
// correlation id; B's causation is A, C's causation is B.
func TestCorrelationAndCausationAcrossTwoHops(t *testing.T) {
	app, ps := newApp(t, nil)
	final := subscribe(t, ps, "audit.written")
	seen := make(chan router.Envelope, 2)
	_ = hexeract.HandleFunc(app, func(ctx context.Context, ev UserRegistered) error {
		env, _ := router.EnvelopeFrom(ctx)
		seen <- env
		return app.Publish(ctx, WelcomeSent(ev))
	})
	// A raw handler: the default chain's Correlation middleware puts the
	// incoming message in the context, the publisher decorator stamps the
	// hand-built message.
	_ = app.AddHandler("raw-welcome", "welcome.sent", func(msg *message.Message) error {
		seen <- router.EnvelopeOf(msg)
		out := message.NewMessage("audit-1", []byte(`{"user_id":"u1"}`))
		out.Metadata.Set(router.KeyType, "audit.written")
		out.SetContext(msg.Context())
		return app.Publisher().Publish("audit.written", out)
	})
	testenv.StartApp(t, app)
	ctx := router.WithCorrelationID(context.Background(), "request-42")
	if err := app.Publish(ctx, UserRegistered{UserID: "u1"}); err != nil {
		t.Fatal(err)
	}
	a, b, c := recv(t, seen), recv(t, seen), router.EnvelopeOf(recv(t, final))
	if a.CorrelationID != "request-42" || b.CorrelationID != "request-42" || c.CorrelationID != "request-42" {
		t.Errorf("correlation ids %q %q %q, want request-42 everywhere", a.CorrelationID, b.CorrelationID, c.CorrelationID)
	}
	if a.CausationID != "" || b.CausationID != a.ID || c.CausationID != b.ID {
		t.Errorf("causation: a=%q b=%q (want %q) c=%q (want %q)", a.CausationID, b.CausationID, a.ID, c.CausationID, b.ID)
	}
}

// TestCorrelationOnProducedMessages: a Watermill handler that returns
// messages (router publish) gets them correlated by the Correlation
// middleware, like Watermill's CorrelationID middleware, plus causation.
func TestCorrelationOnProducedMessages(t *testing.T) {
	in := message.NewMessage("in-1", nil)
	in.Metadata.Set(router.KeyCorrelationID, "corr-9")
	keep := message.NewMessage("keep", nil)
	keep.Metadata.Set(router.KeyCorrelationID, "own")
	h := middleware.Chain(func(msg *message.Message) ([]*message.Message, error) {
		if router.IncomingFrom(msg.Context()) != msg {
			t.Error("incoming message not in the handler context")
		}
		return []*message.Message{message.NewMessage("out-1", nil), keep}, nil
	}, middleware.Correlation)
	out, err := h(in)
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Metadata.Get(router.KeyCorrelationID) != "corr-9" || out[0].Metadata.Get(router.KeyCausationID) != "in-1" {
		t.Errorf("produced message metadata %v", out[0].Metadata)
	}
	if keep.Metadata.Get(router.KeyCorrelationID) != "own" {
		t.Errorf("existing correlation overwritten: %v", keep.Metadata)
	}
}

// TestWithoutDefaultMiddleware: no chain, no decorator.
func TestWithoutDefaultMiddleware(t *testing.T) {
	ps := newPubSub(t)
	app, err := hexeract.New(hexeract.WithPubSub(ps, ps), hexeract.WithoutDefaultMiddleware())
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if app.Publisher() != message.Publisher(ps) {
		t.Error("publisher decorated although the default middleware is off")
	}
	app2, _ := newApp(t, nil)
	if _, ok := app2.Publisher().(interface{ Unwrap() message.Publisher }); !ok {
		t.Error("default App publisher is not decorated")
	}
}

func TestDefaultConfigErrorsReachNew(t *testing.T) {
	_, err := hexeract.New(hexeract.WithDefaultMiddleware(func(c *middleware.DefaultConfig) { c.Retry.MaxAttempts = -2 }))
	if err == nil || !strings.Contains(err.Error(), "MaxAttempts") {
		t.Fatalf("err = %v", err)
	}
}

func waitSpans(t *testing.T, rec *tracetest.SpanRecorder, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		spans := rec.Ended()
		if len(spans) >= n || time.Now().After(deadline) {
			if len(spans) < n {
				t.Fatalf("%d spans ended, want %d: %v", len(spans), n, spanNames(spans))
			}
			return spans
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func spanNames(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}

func attrMap(kvs []attribute.KeyValue) map[string]string {
	out := map[string]string{}
	for _, kv := range kvs {
		out[string(kv.Key)] = kv.Value.String()
	}
	return out
}
