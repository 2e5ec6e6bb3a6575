package hexeract_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/internal/testenv"
)

// events records what happened, in order.
type events struct {
	mu  sync.Mutex
	got []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, s)
}

func (e *events) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.got)
}

type recComponent struct {
	name     string
	ev       *events
	startErr error
}

func (c *recComponent) Start(context.Context) error { c.ev.add(c.name + " start"); return c.startErr }
func (c *recComponent) Close() error                { c.ev.add(c.name + " close"); return nil }

// onceComponent is a second Component type, for AttachOnce.
type onceComponent struct{ *recComponent }

// Close stops the App in the documented order: the router stops taking
// messages and the handler in flight finishes, then the workers stop, then
// the Components close in reverse attach order. Components start before
// the router takes messages.
func TestCloseOrder(t *testing.T) {
	ev := &events{}
	worker := hexeract.WorkerFunc(func(ctx context.Context) error {
		<-ctx.Done()
		ev.add("worker stopped")
		return nil
	})
	app, err := hexeract.New(hexeract.WithLogger(quietLogger()), hexeract.WithWorker(worker))
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	if err := hexeract.HandleFunc(app, func(ctx context.Context, p lcPong) error {
		ev.add("handler entered")
		close(entered)
		<-release
		ev.add("handler finished")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		if err := app.Attach(&recComponent{name: name, ev: ev}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	<-app.Running()
	ev.add("running")
	if err := app.Publish(ctx, lcPong{N: 1}); err != nil {
		t.Fatal(err)
	}
	<-entered
	closed := make(chan error, 1)
	go func() { closed <- app.Close() }()
	time.Sleep(100 * time.Millisecond) // Close is waiting for the handler
	ev.add("release")
	close(release)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := []string{"a start", "b start", "running", "handler entered", "release", "handler finished", "worker stopped", "b close", "a close"}
	if got := ev.list(); !slices.Equal(got, want) {
		t.Fatalf("order:\n got %q\nwant %q", got, want)
	}
	if err := app.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if got := ev.list(); len(got) != len(want) {
		t.Fatalf("a second Close closed the Components again: %q", got[len(want):])
	}
}

// A Component whose Start fails stops Run with its error; Close still
// closes every attached Component, and nothing can be attached afterwards.
func TestComponentStartErrorStopsRun(t *testing.T) {
	ev := &events{}
	app, err := hexeract.New(hexeract.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := hexeract.HandleFunc(app, func(context.Context, lcPong) error { return nil }); err != nil {
		t.Fatal(err)
	}
	_ = app.Attach(&recComponent{name: "ok", ev: ev})
	_ = app.Attach(&recComponent{name: "bad", ev: ev, startErr: boom})
	runDone := make(chan error, 1)
	go func() { runDone <- app.Run(context.Background()) }()
	select {
	case err := <-runDone:
		if !errors.Is(err, boom) {
			t.Fatalf("Run: %v, want the Start error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after a Component failed to start")
	}
	if err := hexeract.HandleFunc(app, func(context.Context, lcPing) error { return nil }); err == nil {
		t.Error("a handler added after Run failed should be refused")
	}
	if err := app.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	want := []string{"ok start", "bad start", "bad close", "ok close"}
	if got := ev.list(); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if err := app.Attach(&recComponent{name: "late", ev: ev}); err == nil {
		t.Error("Attach after Close should fail")
	}
	if _, err := hexeract.AttachOnce(app, func() (*onceComponent, error) { return &onceComponent{}, nil }); err == nil {
		t.Error("AttachOnce of a new Component after Close should fail")
	}
	if c, err := hexeract.AttachOnce(app, func() (*recComponent, error) { return nil, errors.New("not called") }); err != nil || c.name != "ok" {
		t.Errorf("AttachOnce after Close still finds the attached state: %v, %v", c, err)
	}
}

// A Component attached to a running App starts at once; AttachOnce creates
// a Component once however many goroutines ask, and Attached finds it.
func TestAttachWhileRunningAndAttachOnce(t *testing.T) {
	ev := &events{}
	app, err := hexeract.New(hexeract.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if err := hexeract.HandleFunc(app, func(context.Context, lcPong) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, ok := hexeract.Attached[*recComponent](app); ok {
		t.Fatal("Attached found a Component on a new App")
	}
	stop := testenv.StartApp(t, app)
	if err := app.Attach(&recComponent{name: "late", ev: ev}); err != nil {
		t.Fatal(err)
	}
	if got := ev.list(); !slices.Equal(got, []string{"late start"}) {
		t.Fatalf("after Attach on a running App: %q", got)
	}
	var wg sync.WaitGroup
	created := make(chan struct{}, 10)
	got := make([]*onceComponent, 10)
	for i := range 10 {
		wg.Go(func() {
			c, err := hexeract.AttachOnce(app, func() (*onceComponent, error) {
				created <- struct{}{}
				return &onceComponent{&recComponent{name: "once", ev: ev}}, nil
			})
			if err != nil {
				t.Error(err)
			}
			got[i] = c
		})
	}
	wg.Wait()
	if len(created) != 1 {
		t.Fatalf("AttachOnce created %d Components, want 1", len(created))
	}
	first, ok := hexeract.Attached[*onceComponent](app)
	for _, c := range got {
		if !ok || c != first {
			t.Fatal("AttachOnce and Attached returned different Components")
		}
	}
	stop()
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	if got := ev.list(); !slices.Equal(got, []string{"late start", "once start", "once close", "late close"}) {
		t.Fatalf("got %q", got)
	}
}

// Cancelling Run's context stops the workers only after the handlers in
// flight finished: what they write (an outbox row, a schedule) is still
// taken by the App's relay or poller.
func TestCancelStopsWorkersAfterTheHandlers(t *testing.T) {
	ev := &events{}
	worker := hexeract.WorkerFunc(func(ctx context.Context) error {
		<-ctx.Done()
		ev.add("worker stopped")
		return nil
	})
	app, err := hexeract.New(hexeract.WithLogger(quietLogger()), hexeract.WithWorker(worker))
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	if err := hexeract.HandleFunc(app, func(ctx context.Context, p lcPong) error {
		close(entered)
		<-release
		ev.add("handler finished")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	<-app.Running()
	if err := app.Publish(ctx, lcPong{N: 1}); err != nil {
		t.Fatal(err)
	}
	<-entered
	cancel()
	time.Sleep(100 * time.Millisecond)
	ev.add("release")
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	_ = app.Close()
	if got, want := ev.list(), []string{"release", "handler finished", "worker stopped"}; !slices.Equal(got, want) {
		t.Fatalf("order: got %q, want %q", got, want)
	}
}
