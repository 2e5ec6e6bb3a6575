package reqreply_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/reqreply"
)

// A request whose context is already cancelled is not sent: its handler
// must not run (it may have side effects) for a caller that gave up.
func TestCancelledContextSendsNothing(t *testing.T) {
	tr := goChannelTransport(t)
	resp, _ := tr.newResponder(t)
	var calls atomic.Int64
	if err := reqreply.Handle(resp, doubleHandler("a", &calls)); err != nil {
		t.Fatal(err)
	}
	testenv.StartApp(t, resp)
	caller := newClient(t, tr)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := reqreply.Request[Double, Doubled](ctx, caller, Double{N: 1}, reqreply.Timeout(10*time.Second)); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	// Requests on one topic reach the responder in order: once the next
	// one is answered, the cancelled one would have been handled.
	if got, err := reqreply.Request[Double, Doubled](context.Background(), caller, Double{N: 2}, reqreply.Timeout(10*time.Second)); err != nil || got.Result != 4 {
		t.Fatalf("got %+v, %v", got, err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1: the cancelled request was sent", n)
	}
	if st := reqreply.StatsFor(caller); st.Requests != 1 {
		t.Errorf("caller stats %+v: want 1 request published", st)
	}
	c, _ := reqreply.ClientFor(caller)
	if c.Pending() != 0 {
		t.Errorf("%d requests still pending", c.Pending())
	}
}

// After the App (and with it the reply subscription) is closed, a request
// fails with ErrClosed and the error says how to go on.
func TestClosedClientErrorSaysWhatToDo(t *testing.T) {
	app, err := hexeract.New(hexeract.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	c, err := reqreply.ClientFor(app)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "client closed", 10*time.Second, func() bool {
		_, err := reqreply.Request[Double, Doubled](context.Background(), app, Double{N: 1}, reqreply.Timeout(time.Second))
		return errors.Is(err, reqreply.ErrClosed)
	})
	_, err = reqreply.Request[Double, Doubled](context.Background(), app, Double{N: 1}, reqreply.Timeout(time.Second))
	if !strings.Contains(err.Error(), c.ReplyTopic()) || !strings.Contains(err.Error(), "reqreply.NewClient") {
		t.Errorf("err = %q: want the reply topic and what to do (reqreply.NewClient)", err)
	}
}
