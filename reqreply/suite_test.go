package reqreply_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/reqreply"
	"github.com/hexeract/hexeract/router"
)

// Messages used by the tests.

type Double struct {
	N     int           `json:"n"`
	Sleep time.Duration `json:"sleep,omitempty"`
	Fail  string        `json:"fail,omitempty"` // "out_of_stock", "plain"
}

func (Double) MessageType() string { return "math.double" }

type Doubled struct {
	N      int    `json:"n"`
	Result int    `json:"result"`
	By     string `json:"by,omitempty"`
}

func (Doubled) MessageType() string { return "math.doubled" }

type PlaceOrder struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

func (PlaceOrder) MessageType() string { return "orders.place" }

type OrderAccepted struct {
	OrderID string `json:"order_id"`
}

func (OrderAccepted) MessageType() string { return "orders.accepted" }

type OrderRejected struct {
	Reason string `json:"reason"`
}

func (OrderRejected) MessageType() string { return "orders.rejected" }

var ErrOutOfStock = reqreply.NewError("out_of_stock", "item is out of stock")

// transport builds Apps wired to one broker. Both Apps of a test share the
// broker; each responder App has its own connections so it can be stopped
// and replaced.
type transport struct {
	name string
	// durable: requests published while no responder runs wait for the next one.
	durable bool
	// ttl: the transport drops requests whose deadline passed (message TTL).
	ttl bool
	// newResponder returns an App (not running) and the handler options its
	// responders need (for example a separate reply publisher).
	newResponder func(t *testing.T) (*hexeract.App, []reqreply.HandlerOption)
	// newCaller returns an App for callers and the options of its client.
	newCaller func(t *testing.T) (*hexeract.App, []reqreply.ClientOption)
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(discard{}, &slog.HandlerOptions{Level: slog.LevelError}))
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// doubleHandler answers Double requests; by names the responder.
func doubleHandler(by string, calls *atomic.Int64) func(ctx context.Context, q Double) (Doubled, error) {
	return func(ctx context.Context, q Double) (Doubled, error) {
		if calls != nil {
			calls.Add(1)
		}
		if q.Sleep > 0 {
			select {
			case <-time.After(q.Sleep):
			case <-ctx.Done():
				// Keep going: the test wants the late reply to be sent.
				time.Sleep(q.Sleep / 2)
			}
		}
		switch q.Fail {
		case "out_of_stock":
			return Doubled{}, hexeract.Permanent(fmt.Errorf("sku %d: %w", q.N, ErrOutOfStock))
		case "plain":
			return Doubled{}, errors.New("database unavailable")
		}
		return Doubled{N: q.N, Result: 2 * q.N, By: by}, nil
	}
}

func newClient(t *testing.T, tr transport) *hexeract.App {
	t.Helper()
	caller, copts := tr.newCaller(t)
	c, err := reqreply.NewClient(caller, copts...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return caller
}

func eventually(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %s", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// suiteOrder lists the transport-independent tests.
var suiteOrder = []string{"RoundTrip", "RemoteError", "TimeoutAndLateReply", "ExpiredRequestSkipped", "ConcurrentCallers", "SeveralResponseTypes", "NoResponder", "ResponderRestart"}

var suiteTests = map[string]func(*testing.T, transport){
	"RoundTrip":             testRoundTrip,
	"RemoteError":           testRemoteError,
	"TimeoutAndLateReply":   testTimeoutAndLateReply,
	"ExpiredRequestSkipped": testExpiredSkipped,
	"ConcurrentCallers":     testConcurrentCallers,
	"SeveralResponseTypes":  testSeveralTypes,
	"NoResponder":           testNoResponder,
	"ResponderRestart":      testResponderRestart,
}

// runSuite runs every suite test on a fresh transport from mk (own broker
// or own topics, so tests cannot see each other's messages).
func runSuite(t *testing.T, mk func(t *testing.T) transport) {
	for _, name := range suiteOrder {
		t.Run(name, func(t *testing.T) { suiteTests[name](t, mk(t)) })
	}
}

func testRoundTrip(t *testing.T, tr transport) {
	resp, hopts := tr.newResponder(t)
	var seen atomic.Value
	err := reqreply.Handle(resp, func(ctx context.Context, q Double) (Doubled, error) {
		env, _ := router.EnvelopeFrom(ctx)
		seen.Store(env)
		return Doubled{N: q.N, Result: 2 * q.N}, nil
	}, hopts...)
	if err != nil {
		t.Fatal(err)
	}
	testenv.StartApp(t, resp)
	caller := newClient(t, tr)

	ctx := router.WithCorrelationID(context.Background(), "conversation-1")
	got, err := reqreply.Request[Double, Doubled](ctx, caller, Double{N: 21}, reqreply.Timeout(20*time.Second))
	if err != nil {
		t.Fatalf("Request: %v", err)
	}
	if got.Result != 42 || got.N != 21 {
		t.Fatalf("got %+v, want result 42 for 21", got)
	}
	env := seen.Load().(router.Envelope)
	if env.CorrelationID != "conversation-1" {
		t.Errorf("responder saw correlation id %q, want conversation-1", env.CorrelationID)
	}
	if env.Metadata.Get(router.KeyRequestID) != env.ID {
		t.Errorf("request id %q should be the request's ce_id %q", env.Metadata.Get(router.KeyRequestID), env.ID)
	}
	if env.Metadata.Get(router.KeyRequestID) == env.CorrelationID {
		t.Error("request id and correlation id must differ")
	}
	if _, ok := reqreply.ParseDeadline(env.Metadata.Get(router.KeyRequestDeadline)); !ok {
		t.Errorf("request carries no deadline: %q", env.Metadata.Get(router.KeyRequestDeadline))
	}
	st := reqreply.StatsFor(caller)
	if st.Requests != 1 || st.Replies != 1 || st.LateReplies != 0 {
		t.Errorf("caller stats %+v, want 1 request, 1 reply, 0 late", st)
	}
	eventually(t, "responder counted the request", 5*time.Second, func() bool { return reqreply.StatsFor(resp).Handled == 1 })
}

func testRemoteError(t *testing.T, tr transport) {
	resp, hopts := tr.newResponder(t)
	if err := reqreply.Handle(resp, doubleHandler("a", nil), hopts...); err != nil {
		t.Fatal(err)
	}
	testenv.StartApp(t, resp)
	caller := newClient(t, tr)
	ctx := context.Background()

	_, err := reqreply.Request[Double, Doubled](ctx, caller, Double{N: 7, Fail: "out_of_stock"}, reqreply.Timeout(20*time.Second))
	if !errors.Is(err, ErrOutOfStock) {
		t.Fatalf("err = %v, want ErrOutOfStock", err)
	}
	var re *reqreply.RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("err %T is not a *RemoteError", err)
	}
	if re.Code != "out_of_stock" || !re.Permanent() || !hexeract.IsPermanent(err) {
		t.Errorf("remote error %+v: want code out_of_stock, permanent", re)
	}
	if re.RequestType != "math.double" || re.Message == "" {
		t.Errorf("remote error %+v: want request type math.double and a message", re)
	}
	if errors.Is(err, reqreply.ErrTimeout) || errors.Is(err, reqreply.ErrNoResponder) {
		t.Errorf("remote error must not match ErrTimeout or ErrNoResponder: %v", err)
	}

	_, err = reqreply.Request[Double, Doubled](ctx, caller, Double{N: 8, Fail: "plain"}, reqreply.Timeout(20*time.Second))
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want a *RemoteError", err)
	}
	if re.Code != reqreply.CodeInternal || re.Permanent() || hexeract.IsPermanent(err) || re.Message != "database unavailable" {
		t.Errorf("remote error %+v: want code internal, not permanent, message %q", re, "database unavailable")
	}

	// A request the responder cannot decode: the caller gets bad_request at once.
	_, err = reqreply.Request[PlaceOrder, Doubled](ctx, caller, PlaceOrder{SKU: "x"},
		reqreply.Topic(resp.TopicFor(Double{})), reqreply.Timeout(20*time.Second))
	if !errors.As(err, &re) || re.Code != reqreply.CodeBadRequest || !re.Permanent() {
		t.Fatalf("err = %v, want a permanent bad_request RemoteError", err)
	}
}

func testTimeoutAndLateReply(t *testing.T, tr transport) {
	resp, hopts := tr.newResponder(t)
	if err := reqreply.Handle(resp, doubleHandler("a", nil), hopts...); err != nil {
		t.Fatal(err)
	}
	testenv.StartApp(t, resp)
	caller := newClient(t, tr)
	ctx := context.Background()

	// Warm up (Kafka and JetStream create topics on first use).
	if _, err := reqreply.Request[Double, Doubled](ctx, caller, Double{N: 1}, reqreply.Timeout(20*time.Second)); err != nil {
		t.Fatalf("warm-up request: %v", err)
	}

	start := time.Now()
	_, err := reqreply.Request[Double, Doubled](ctx, caller, Double{N: 2, Sleep: 1500 * time.Millisecond}, reqreply.Timeout(300*time.Millisecond))
	if !errors.Is(err, reqreply.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrTimeout (and context.DeadlineExceeded)", err)
	}
	if el := time.Since(start); el > 1200*time.Millisecond {
		t.Errorf("timeout took %s, want about 300ms", el)
	}
	var re *reqreply.RemoteError
	if errors.As(err, &re) {
		t.Errorf("timeout must not be a RemoteError")
	}

	// While the slow reply is on its way, other requests get their own answers.
	for i := 10; i < 15; i++ {
		got, err := reqreply.Request[Double, Doubled](ctx, caller, Double{N: i}, reqreply.Timeout(20*time.Second))
		if err != nil || got.N != i || got.Result != 2*i {
			t.Fatalf("request %d: got %+v, %v", i, got, err)
		}
	}
	eventually(t, "late reply counted", 10*time.Second, func() bool { return reqreply.StatsFor(caller).LateReplies == 1 })
	if st := reqreply.StatsFor(caller); st.Timeouts != 1 || st.Replies != 6 {
		t.Errorf("stats %+v: want 1 timeout and 6 replies", st)
	}

	// A cancelled context is not a timeout.
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	_, err = reqreply.Request[Double, Doubled](cctx, caller, Double{N: 3, Sleep: 300 * time.Millisecond})
	if !errors.Is(err, context.Canceled) || errors.Is(err, reqreply.ErrTimeout) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	eventually(t, "second late reply counted", 10*time.Second, func() bool { return reqreply.StatsFor(caller).LateReplies == 2 })
}

func testExpiredSkipped(t *testing.T, tr transport) {
	resp, hopts := tr.newResponder(t)
	var calls atomic.Int64
	if err := reqreply.Handle(resp, doubleHandler("a", &calls), hopts...); err != nil {
		t.Fatal(err)
	}
	testenv.StartApp(t, resp)
	caller := newClient(t, tr)
	client, err := reqreply.ClientFor(caller)
	if err != nil {
		t.Fatal(err)
	}
	// A request whose caller gave up before the responder saw it.
	msg, err := caller.NewMessage(context.Background(), Double{N: 5})
	if err != nil {
		t.Fatal(err)
	}
	msg.Metadata[router.KeyReplyTo] = client.ReplyTopic()
	msg.Metadata[router.KeyRequestID] = msg.UUID
	msg.Metadata[router.KeyRequestDeadline] = time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	if err := caller.Publisher().Publish(caller.TopicFor(Double{}), msg); err != nil {
		t.Fatal(err)
	}
	if tr.ttl {
		// The broker may drop the request (TTL) before the responder sees it.
		time.Sleep(time.Second)
	} else {
		eventually(t, "expired request skipped", 20*time.Second, func() bool { return reqreply.StatsFor(resp).Expired == 1 })
	}
	if calls.Load() != 0 {
		t.Errorf("handler ran %d times for an expired request", calls.Load())
	}
	// The responder keeps answering.
	if got, err := reqreply.Request[Double, Doubled](context.Background(), caller, Double{N: 6}, reqreply.Timeout(20*time.Second)); err != nil || got.Result != 12 {
		t.Fatalf("got %+v, %v", got, err)
	}
	if n := reqreply.StatsFor(caller).LateReplies; n != 0 {
		t.Errorf("an expired request must get no reply; late replies = %d", n)
	}
}

func testConcurrentCallers(t *testing.T, tr transport) {
	resp, hopts := tr.newResponder(t)
	if err := reqreply.Handle(resp, doubleHandler("a", nil), hopts...); err != nil {
		t.Fatal(err)
	}
	testenv.StartApp(t, resp)
	caller := newClient(t, tr)
	const callers, each = 100, 5
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				n := c*1000 + i
				got, err := reqreply.Request[Double, Doubled](context.Background(), caller, Double{N: n}, reqreply.Timeout(30*time.Second))
				if err != nil {
					errs <- fmt.Errorf("caller %d request %d: %w", c, i, err)
					return
				}
				if got.N != n || got.Result != 2*n {
					errs <- fmt.Errorf("caller %d got the answer %+v for %d", c, got, n)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := reqreply.StatsFor(caller)
	if st.Replies != callers*each || st.LateReplies != 0 {
		t.Errorf("stats %+v: want %d replies, 0 late", st, callers*each)
	}
	c, _ := reqreply.ClientFor(caller)
	if c.Pending() != 0 {
		t.Errorf("%d requests still pending", c.Pending())
	}
}

// OrderResult is the set of answers to PlaceOrder.
type OrderResult interface {
	router.Message
	orderResult()
}

func (OrderAccepted) orderResult() {}
func (OrderRejected) orderResult() {}

func testSeveralTypes(t *testing.T, tr transport) {
	resp, hopts := tr.newResponder(t)
	err := reqreply.Handle(resp, func(ctx context.Context, o PlaceOrder) (OrderResult, error) {
		if o.Qty > 10 {
			return OrderRejected{Reason: "too many"}, nil
		}
		return OrderAccepted{OrderID: "o-" + o.SKU}, nil
	}, hopts...)
	if err != nil {
		t.Fatal(err)
	}
	testenv.StartApp(t, resp)
	caller := newClient(t, tr)
	for _, reg := range []func(*router.Registry) (string, error){router.Register[OrderAccepted], router.Register[OrderRejected]} {
		if _, err := reg(caller.Registry()); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	got, err := reqreply.RequestAny(ctx, caller, PlaceOrder{SKU: "a", Qty: 1}, reqreply.Timeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	switch r := got.(type) {
	case OrderAccepted:
		if r.OrderID != "o-a" {
			t.Errorf("accepted %+v", r)
		}
	default:
		t.Fatalf("got %T, want OrderAccepted", got)
	}
	res, err := reqreply.Request[PlaceOrder, OrderResult](ctx, caller, PlaceOrder{SKU: "b", Qty: 11}, reqreply.Timeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := res.(OrderRejected); !ok || r.Reason != "too many" {
		t.Fatalf("got %#v, want OrderRejected{too many}", res)
	}
	// Asking for one concrete type and getting the other is a decode error.
	_, err = reqreply.Request[PlaceOrder, OrderAccepted](ctx, caller, PlaceOrder{SKU: "c", Qty: 11}, reqreply.Timeout(20*time.Second))
	var de *router.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want *router.DecodeError", err)
	}
}

func testNoResponder(t *testing.T, tr transport) {
	resp, hopts := tr.newResponder(t)
	if err := reqreply.Handle(resp, doubleHandler("a", nil), hopts...); err != nil {
		t.Fatal(err)
	}
	testenv.StartApp(t, resp)
	caller := newClient(t, tr)
	ctx := context.Background()
	got, err := reqreply.Request[Double, Doubled](ctx, caller, Double{N: 4}, reqreply.NoResponderTimeout(10*time.Second), reqreply.Timeout(20*time.Second))
	if err != nil || got.Result != 8 {
		t.Fatalf("with a responder: got %+v, %v", got, err)
	}
	// Nobody consumes this request type.
	_, err = reqreply.Request[PlaceOrder, OrderAccepted](ctx, caller, PlaceOrder{SKU: "z"}, reqreply.NoResponderTimeout(300*time.Millisecond), reqreply.Timeout(20*time.Second))
	if !errors.Is(err, reqreply.ErrNoResponder) || errors.Is(err, reqreply.ErrTimeout) {
		t.Fatalf("err = %v, want ErrNoResponder", err)
	}
}

func testResponderRestart(t *testing.T, tr transport) {
	var callsA, callsB atomic.Int64
	respA, hopts := tr.newResponder(t)
	if err := reqreply.Handle(respA, doubleHandler("a", &callsA), hopts...); err != nil {
		t.Fatal(err)
	}
	stopA := testenv.StartApp(t, respA)
	caller := newClient(t, tr)

	attempt := 2 * time.Second
	if tr.durable {
		attempt = 20 * time.Second
	}
	const callers, each = 8, 25
	var done atomic.Int64
	var retries atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				n := c*1000 + i
				for {
					got, err := reqreply.Request[Double, Doubled](context.Background(), caller, Double{N: n}, reqreply.Timeout(attempt))
					if errors.Is(err, reqreply.ErrTimeout) {
						retries.Add(1)
						continue
					}
					if err != nil {
						errs <- fmt.Errorf("caller %d request %d: %w", c, i, err)
						return
					}
					if got.N != n || got.Result != 2*n {
						errs <- fmt.Errorf("caller %d got %+v for %d", c, got, n)
						return
					}
					break
				}
				done.Add(1)
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	eventually(t, "first answers", 30*time.Second, func() bool { return done.Load() >= callers*each/4 })
	stopA()
	time.Sleep(300 * time.Millisecond)
	respB, hopts := tr.newResponder(t)
	if err := reqreply.Handle(respB, doubleHandler("b", &callsB), hopts...); err != nil {
		t.Fatal(err)
	}
	testenv.StartApp(t, respB)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if done.Load() != callers*each {
		t.Fatalf("%d of %d requests answered", done.Load(), callers*each)
	}
	if callsA.Load() == 0 || callsB.Load() == 0 {
		t.Errorf("responder A handled %d, B handled %d: the restart was not mid-stream", callsA.Load(), callsB.Load())
	}
	t.Logf("%s: A handled %d, B handled %d, caller retries %d, late replies %d", tr.name, callsA.Load(), callsB.Load(), retries.Load(), reqreply.StatsFor(caller).LateReplies)
}

var _ message.Publisher // keep the import for transports' files

// A message on a request topic without reply-to metadata is not a request:
// the responder fails it permanently and the App's dead-letter middleware
// moves it aside with the fault recorded.
func TestNotARequestIsDeadLettered(t *testing.T) {
	tr := goChannelTransport(t)
	resp, _ := tr.newResponder(t)
	var calls atomic.Int64
	if err := reqreply.Handle(resp, doubleHandler("a", &calls)); err != nil {
		t.Fatal(err)
	}
	dlq, err := resp.Subscriber().Subscribe(context.Background(), resp.TopicFor(Double{})+middleware.DefaultDLQSuffix)
	if err != nil {
		t.Fatal(err)
	}
	testenv.StartApp(t, resp)
	if err := resp.Publish(context.Background(), Double{N: 1}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-dlq:
		m.Ack()
		if m.Metadata.Get(router.KeyFaultPermanent) != "true" || !strings.Contains(m.Metadata.Get(router.KeyFaultError), router.KeyReplyTo) {
			t.Errorf("dead letter fault metadata: %v", m.Metadata)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the message was not dead-lettered")
	}
	if calls.Load() != 0 {
		t.Errorf("the handler ran for a message that is not a request")
	}
}

func TestClientClose(t *testing.T) {
	tr := goChannelTransport(t)
	resp, _ := tr.newResponder(t)
	if err := reqreply.Handle(resp, doubleHandler("a", nil)); err != nil {
		t.Fatal(err)
	}
	testenv.StartApp(t, resp)
	caller, _ := tr.newCaller(t)
	c, err := reqreply.NewClient(caller)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reqreply.NewClient(caller); err == nil {
		t.Fatal("a second NewClient on the same App should fail")
	}
	// A request in flight when the client closes fails with ErrClosed.
	errs := make(chan error, 1)
	go func() {
		_, err := reqreply.Request[Double, Doubled](context.Background(), caller, Double{N: 1, Sleep: time.Second}, reqreply.Timeout(10*time.Second))
		errs <- err
	}()
	eventually(t, "request pending", 5*time.Second, func() bool { return c.Pending() == 1 })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; !errors.Is(err, reqreply.ErrClosed) {
		t.Fatalf("in-flight request: err = %v, want ErrClosed", err)
	}
	if _, err := reqreply.Request[Double, Doubled](context.Background(), caller, Double{N: 2}); !errors.Is(err, reqreply.ErrClosed) {
		t.Fatalf("after Close: err = %v, want ErrClosed", err)
	}
	c2, err := reqreply.NewClient(caller)
	if err != nil {
		t.Fatalf("NewClient after Close: %v", err)
	}
	t.Cleanup(func() { _ = c2.Close() })
	if c2.ReplyTopic() == c.ReplyTopic() {
		t.Error("a new client should get a new reply topic")
	}
	if got, err := reqreply.Request[Double, Doubled](context.Background(), caller, Double{N: 3}, reqreply.Timeout(10*time.Second)); err != nil || got.Result != 6 {
		t.Fatalf("with the new client: %+v, %v", got, err)
	}
}
