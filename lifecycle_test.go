package hexeract_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters/gochannel"
	"github.com/hexeract/hexeract/internal/testenv"
)

// longClose is a router CloseTimeout far above the time the tests below
// allow Run and Close: a test that waits for it has hit the defect.
var longClose = hexeract.WithRouterConfig(message.RouterConfig{CloseTimeout: 15 * time.Second})

func noop(context.Context, UserRegistered) error { return nil }

// runAsync calls app.Run(ctx) in the background and returns its result channel.
func runAsync(app *hexeract.App, ctx context.Context) <-chan error {
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	return done
}

// TestRunWithCancelledContextReturnsAtOnce runs an App whose context is
// already cancelled (a shutdown signal during start-up). Run used to close
// the router before the router had started its handlers: the router then
// waited its whole CloseTimeout for them and Run reported "router close
// timeout".
func TestRunWithCancelledContextReturnsAtOnce(t *testing.T) {
	ps := gochannel.New(gochannel.Config{}, nil)
	app, err := hexeract.New(hexeract.WithPubSub(ps, ps), longClose)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if err := hexeract.HandleFunc(app, noop); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := recv(t, runAsync(app, ctx)); err != nil {
		t.Fatalf("Run with a cancelled context: %v", err)
	}
}

// TestCloseAfterFailedRunReturnsAtOnce makes Run fail to subscribe (the
// transport is closed). The deferred Close that follows used to close a
// router whose handlers never started and wait its whole CloseTimeout.
func TestCloseAfterFailedRunReturnsAtOnce(t *testing.T) {
	ps := gochannel.New(gochannel.Config{}, nil)
	app, err := hexeract.New(hexeract.WithPubSub(ps, ps), longClose)
	if err != nil {
		t.Fatal(err)
	}
	if err := hexeract.HandleFunc(app, noop); err != nil {
		t.Fatal(err)
	}
	_ = ps.Close()
	if err := recv(t, runAsync(app, context.Background())); err == nil || !strings.Contains(err.Error(), "cannot subscribe") {
		t.Fatalf("Run on a closed transport: %v", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- app.Close() }()
	if err := recv(t, closed); err != nil {
		t.Fatalf("Close after a failed Run: %v", err)
	}
}

// TestHandleWhileRunStarts adds a handler after Run was called but, most
// likely, before its router runs (a worker's start is the signal). Handle
// used to call the router's RunHandlers unsynchronised with the router's
// start: a data race, and now and then the error "you can't call
// RunHandlers on non-running router" for a handler that was registered
// anyway. The handler must be accepted and must get messages.
func TestHandleWhileRunStarts(t *testing.T) {
	for i := range 20 {
		workerStarted := make(chan struct{})
		ps := gochannel.New(gochannel.Config{}, nil)
		app, err := hexeract.New(hexeract.WithPubSub(ps, ps), longClose,
			hexeract.WithWorker(hexeract.WorkerFunc(func(ctx context.Context) error {
				close(workerStarted)
				<-ctx.Done()
				return nil
			})))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := runAsync(app, ctx)
		recv(t, workerStarted)
		got := make(chan UserRegistered, 1)
		err = hexeract.HandleFunc(app, func(_ context.Context, ev UserRegistered) error {
			got <- ev
			return nil
		})
		if err != nil {
			t.Fatalf("round %d: Handle while Run starts: %v", i, err)
		}
		recv(t, app.Running())
		if err := app.Publish(ctx, UserRegistered{UserID: "late"}); err != nil {
			t.Fatal(err)
		}
		if ev := recv(t, got); ev.UserID != "late" {
			t.Fatalf("round %d: got %+v", i, ev)
		}
		cancel()
		if err := recv(t, done); err != nil {
			t.Fatalf("round %d: Run: %v", i, err)
		}
		_ = app.Close()
	}
}

// TestHandleAfterRunReturnedIsAnError adds a handler to an App whose Run has
// returned. It used to be accepted without error although it never runs.
func TestHandleAfterRunReturnedIsAnError(t *testing.T) {
	app, err := hexeract.New(longClose)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	stop := testenv.RunApp(t, app)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	err = hexeract.HandleFunc(app, noop)
	if err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Fatalf("Handle after Run returned: %v", err)
	}
}

// TestRunAfterCloseIsAnError runs an App that was already closed. Run used
// to run it (workers included) as if Close had not been called.
func TestRunAfterCloseIsAnError(t *testing.T) {
	ps := gochannel.New(gochannel.Config{}, nil)
	workerRan := make(chan struct{}, 1)
	app, err := hexeract.New(hexeract.WithPubSub(ps, ps), longClose,
		hexeract.WithWorker(hexeract.WorkerFunc(func(ctx context.Context) error {
			workerRan <- struct{}{}
			<-ctx.Done()
			return nil
		})))
	if err != nil {
		t.Fatal(err)
	}
	if err := hexeract.HandleFunc(app, noop); err != nil {
		t.Fatal(err)
	}
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAsync(app, ctx)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "after App.Close") {
			t.Fatalf("Run after Close: %v", err)
		}
	case <-workerRan:
		t.Fatal("Run after Close started the workers")
	case <-time.After(5 * time.Second):
		t.Fatal("Run after Close is still running after 5s")
	}
	if err := hexeract.HandleFunc(app, noop, hexeract.WithName("after-close")); err == nil {
		t.Fatal("Handle after Close accepted")
	}
}

// TestCloseRightAfterRunStarts closes the App while Run is starting: Close
// and Run both return promptly, without a close timeout.
func TestCloseRightAfterRunStarts(t *testing.T) {
	workerStarted := make(chan struct{})
	ps := gochannel.New(gochannel.Config{}, nil)
	app, err := hexeract.New(hexeract.WithPubSub(ps, ps), longClose,
		hexeract.WithWorker(hexeract.WorkerFunc(func(ctx context.Context) error {
			close(workerStarted)
			<-ctx.Done()
			return nil
		})))
	if err != nil {
		t.Fatal(err)
	}
	if err := hexeract.HandleFunc(app, noop); err != nil {
		t.Fatal(err)
	}
	done := runAsync(app, context.Background())
	recv(t, workerStarted)
	closed := make(chan error, 1)
	go func() { closed <- app.Close() }()
	if err := recv(t, closed); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := recv(t, done); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestNilWorkerOrMiddlewareIsAConfigurationError: a nil worker (a relay
// whose constructor failed, its error ignored) or nil middleware used to be
// accepted by New and then crash the process from a goroutine of Run or of
// the router.
func TestNilWorkerOrMiddlewareIsAConfigurationError(t *testing.T) {
	var nilFunc hexeract.WorkerFunc
	for name, opt := range map[string]hexeract.Option{
		"nil worker":     hexeract.WithWorker(nil),
		"nil WorkerFunc": hexeract.WithWorker(nilFunc),
		"nil middleware": hexeract.WithMiddleware(nil),
	} {
		app, err := hexeract.New(opt)
		if err == nil {
			_ = app.Close()
			t.Errorf("%s: New returned no error", name)
		} else if !strings.Contains(err.Error(), "nil") {
			t.Errorf("%s: error %q does not say what is wrong", name, err)
		}
	}
}

// TestRunReportsARouterThatStoppedByItself closes the transport under a
// running App: every subscription ends and Watermill's router stops. Run
// used to return nil, so a service exited 0 without consuming anything; it
// now returns ErrRouterStopped. Closing the App instead still gives nil.
func TestRunReportsARouterThatStoppedByItself(t *testing.T) {
	ps := gochannel.New(gochannel.Config{}, nil)
	app, err := hexeract.New(hexeract.WithPubSub(ps, ps), longClose)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if err := hexeract.HandleFunc(app, noop); err != nil {
		t.Fatal(err)
	}
	done := runAsync(app, context.Background())
	<-app.Running()
	if err := ps.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, hexeract.ErrRouterStopped) {
			t.Fatalf("Run = %v, want ErrRouterStopped", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its transport was closed")
	}

	ps2 := gochannel.New(gochannel.Config{}, nil)
	app2, err := hexeract.New(hexeract.WithPubSub(ps2, ps2), longClose)
	if err != nil {
		t.Fatal(err)
	}
	if err := hexeract.HandleFunc(app2, noop); err != nil {
		t.Fatal(err)
	}
	done2 := runAsync(app2, context.Background())
	<-app2.Running()
	if err := app2.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done2:
		if err != nil {
			t.Fatalf("Run after App.Close = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after App.Close")
	}
}

// TestUseNilMiddlewareIsRefusedByRun checks that a nil middleware given to
// App.Use makes Run refuse to start with an error naming it; it used to be
// accepted and crash the process later, from a router goroutine, when a
// message arrived.
func TestUseNilMiddlewareIsRefusedByRun(t *testing.T) {
	app, err := hexeract.New()
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if err := hexeract.HandleFunc(app, noop); err != nil {
		t.Fatal(err)
	}
	app.Use(func(h message.HandlerFunc) message.HandlerFunc { return h }, nil)
	select {
	case err := <-runAsync(app, context.Background()):
		if err == nil || !strings.Contains(err.Error(), "nil middleware (argument 2 of 2)") {
			t.Fatalf("Run = %v, want an error naming the nil middleware", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run started despite a nil middleware")
	}
}
