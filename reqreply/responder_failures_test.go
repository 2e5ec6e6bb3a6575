package reqreply_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/reqreply"
	"github.com/hexeract/hexeract/router"
)

// A handler that panics answers its caller with an internal RemoteError at
// once; it is not retried (the panic would repeat) and the caller does not
// wait for its deadline.
func TestHandlerPanicRepliesInternalError(t *testing.T) {
	tr := goChannelTransport(t)
	resp, _ := tr.newResponder(t)
	var calls atomic.Int64
	err := reqreply.Handle(resp, func(ctx context.Context, q Double) (Doubled, error) {
		calls.Add(1)
		var m map[string]int
		m["boom"] = q.N //nolint:staticcheck // nil map: the deliberate panic under test
		return Doubled{}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	testenv.StartApp(t, resp)
	caller := newClient(t, tr)

	_, err = reqreply.Request[Double, Doubled](context.Background(), caller, Double{N: 1}, reqreply.Timeout(5*time.Second))
	var re *reqreply.RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want a *RemoteError for the panic", err)
	}
	if re.Code != reqreply.CodeInternal || !strings.Contains(re.Message, "panic") {
		t.Errorf("remote error %+v: want code internal and a message that names the panic", re)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler ran %d times for one request, want 1", n)
	}
	// The responder counts a request as handled once its reply is
	// published, which may be just after the caller received the reply.
	eventually(t, "responder counted the request", 5*time.Second, func() bool { return reqreply.StatsFor(resp).Handled == 1 })
}

// A responder that shuts down while its handler runs does not answer with
// the handler's "context canceled": the request is nacked and another
// responder instance answers it (durable transport).
func TestResponderShutdownHandsRequestOver(t *testing.T) {
	tr := amqpTransport(t)
	respA, hopts := tr.newResponder(t)
	started := make(chan struct{}, 1)
	err := reqreply.Handle(respA, func(ctx context.Context, q Double) (Doubled, error) {
		select {
		case started <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return Doubled{}, ctx.Err()
	}, hopts...)
	if err != nil {
		t.Fatal(err)
	}
	stopA := testenv.StartApp(t, respA)
	caller := newClient(t, tr)

	type result struct {
		got Doubled
		err error
	}
	res := make(chan result, 1)
	go func() {
		got, err := reqreply.Request[Double, Doubled](context.Background(), caller, Double{N: 21}, reqreply.Timeout(20*time.Second))
		res <- result{got, err}
	}()
	select {
	case <-started:
	case r := <-res:
		t.Fatalf("request ended before the handler started: %+v, %v", r.got, r.err)
	case <-time.After(20 * time.Second):
		t.Fatal("the handler did not start")
	}
	stopA()

	respB, hopts := tr.newResponder(t)
	if err := reqreply.Handle(respB, doubleHandler("b", nil), hopts...); err != nil {
		t.Fatal(err)
	}
	testenv.StartApp(t, respB)
	r := <-res
	if r.err != nil || r.got.Result != 42 || r.got.By != "b" {
		t.Fatalf("got %+v, %v; want the answer of responder b", r.got, r.err)
	}
}

// failingPublisher refuses every message.
type failingPublisher struct{}

func (failingPublisher) Publish(string, ...*message.Message) error {
	return errors.New("reply transport down")
}
func (failingPublisher) Close() error { return nil }

// When the reply cannot be published, the App's default middleware retries
// the request in place (the handler runs again) and then dead-letters it;
// it is not handed back to the transport.
func TestReplyPublishFailureRetriedThenDeadLettered(t *testing.T) {
	tr := goChannelTransport(t)
	resp, _ := tr.newResponder(t)
	var calls atomic.Int64
	if err := reqreply.Handle(resp, doubleHandler("a", &calls), reqreply.WithReplyPublisher(failingPublisher{})); err != nil {
		t.Fatal(err)
	}
	dlq, err := resp.Subscriber().Subscribe(context.Background(), resp.TopicFor(Double{})+middleware.DefaultDLQSuffix)
	if err != nil {
		t.Fatal(err)
	}
	testenv.StartApp(t, resp)
	msg, err := resp.NewMessage(context.Background(), Double{N: 1})
	if err != nil {
		t.Fatal(err)
	}
	msg.Metadata[router.KeyReplyTo] = "hexeract.replies.nobody"
	msg.Metadata[router.KeyRequestID] = msg.UUID
	msg.Metadata[router.KeyRequestDeadline] = time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano)
	if err := resp.Publisher().Publish(resp.TopicFor(Double{}), msg); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-dlq:
		m.Ack()
		if m.UUID != msg.UUID || !strings.Contains(m.Metadata.Get(router.KeyFaultError), "reply transport down") {
			t.Errorf("dead letter %s, fault metadata: %v", m.UUID, m.Metadata)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the request was not dead-lettered")
	}
	if n := calls.Load(); n != middleware.DefaultMaxAttempts {
		t.Errorf("handler ran %d times, want %d (the default retry policy)", n, middleware.DefaultMaxAttempts)
	}
}

// A second responder for the same request type needs its own handler name;
// the error names the option that sets it.
func TestSecondResponderNameErrorSaysWhatToDo(t *testing.T) {
	app := newTestApp(t)
	if err := reqreply.Handle(app, doubleHandler("a", nil)); err != nil {
		t.Fatal(err)
	}
	err := reqreply.Handle(app, doubleHandler("b", nil), reqreply.WithHandlerTopic("other.topic"))
	if err == nil || !strings.Contains(err.Error(), "reqreply.WithHandlerName") {
		t.Fatalf("err = %v, want an error that points to reqreply.WithHandlerName", err)
	}
	if err := reqreply.Handle(app, doubleHandler("b", nil), reqreply.WithHandlerTopic("other.topic"), reqreply.WithHandlerName("second")); err != nil {
		t.Fatalf("with its own name: %v", err)
	}
}
