package hexeract_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/internal/testenv"
)

// funcPlugin is a Plugin made of a name and an install function.
type funcPlugin struct {
	name    string
	install func(app *hexeract.App) error
}

func (p funcPlugin) Name() string { return p.name }

func (p funcPlugin) Install(app *hexeract.App) error {
	if p.install == nil {
		return nil
	}
	return p.install(app)
}

// TestInstallRefusesNilEmptyAndDuplicatePlugins: a nil plugin, an empty
// name and a name already installed are errors; Plugins lists the names
// installed, in order, and not the ones refused or failed.
func TestInstallRefusesNilEmptyAndDuplicatePlugins(t *testing.T) {
	app, err := hexeract.New(hexeract.WithLogger(quietLogger()),
		hexeract.WithPlugins(funcPlugin{name: "first"}))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()

	if err := app.Install(nil); err == nil {
		t.Fatal("Install(nil) succeeded")
	}
	if err := app.Install(funcPlugin{}); err == nil || !strings.Contains(err.Error(), "empty Name") {
		t.Fatalf("Install of an unnamed plugin: %v", err)
	}
	if err := app.Install(funcPlugin{name: "second"}); err != nil {
		t.Fatal(err)
	}
	if err := app.Install(funcPlugin{name: "first"}); err == nil || !strings.Contains(err.Error(), `"first" is already installed`) {
		t.Fatalf("second Install of %q: %v", "first", err)
	}
	boom := errors.New("boom")
	if err := app.Install(funcPlugin{name: "failing", install: func(*hexeract.App) error { return boom }}); !errors.Is(err, boom) {
		t.Fatalf("Install of a failing plugin: %v", err)
	}
	// A plugin may install the plugins it depends on, but not itself again.
	dep := funcPlugin{name: "outer", install: func(app *hexeract.App) error {
		if err := app.Install(funcPlugin{name: "outer"}); err == nil {
			return errors.New("a plugin installed itself while installing")
		}
		return app.Install(funcPlugin{name: "inner"})
	}}
	if err := app.Install(dep); err != nil {
		t.Fatal(err)
	}
	if got, want := app.Plugins(), []string{"first", "second", "inner", "outer"}; !slices.Equal(got, want) {
		t.Fatalf("Plugins() = %v, want %v", got, want)
	}
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	if err := app.Install(funcPlugin{name: "late"}); err == nil {
		t.Fatal("Install after Close succeeded")
	}
}

// TestWithPluginsNilOrFailingFailsNew: New reports a nil plugin by its
// position and a failing Install by the plugin's name.
func TestWithPluginsNilOrFailingFailsNew(t *testing.T) {
	if _, err := hexeract.New(hexeract.WithLogger(quietLogger()), hexeract.WithPlugins(funcPlugin{name: "a"}, nil)); err == nil || !strings.Contains(err.Error(), "plugin 1 given with WithPlugins is nil") {
		t.Fatalf("New with a nil plugin: %v", err)
	}
	ev := &events{}
	failing := funcPlugin{name: "bad", install: func(app *hexeract.App) error {
		if err := app.Attach(&recComponent{name: "c", ev: ev}); err != nil {
			return err
		}
		return errors.New("no config")
	}}
	_, err := hexeract.New(hexeract.WithLogger(quietLogger()), hexeract.WithPlugins(failing))
	if err == nil || !strings.Contains(err.Error(), `install plugin "bad": no config`) {
		t.Fatalf("New with a failing plugin: %v", err)
	}
	// New closed the App it built, and with it what the plugin attached.
	if got := ev.list(); !slices.Equal(got, []string{"c close"}) {
		t.Fatalf("events = %v, want the Component closed", got)
	}
}

// TestPluginMiddlewareWorkerAndComponent: a plugin's middleware reaches
// the handlers added before and after it was installed, its worker runs
// with Run, and its Component is started by Run and closed by Close.
func TestPluginMiddlewareWorkerAndComponent(t *testing.T) {
	ev := &events{}
	var mu sync.Mutex
	seen := map[string]int{} // handler name -> messages the plugin's middleware saw
	workerRan := make(chan struct{})
	plugin := funcPlugin{name: "probe", install: func(app *hexeract.App) error {
		app.Use(func(h message.HandlerFunc) message.HandlerFunc {
			return func(msg *message.Message) ([]*message.Message, error) {
				mu.Lock()
				seen[message.HandlerNameFromCtx(msg.Context())]++
				mu.Unlock()
				return h(msg)
			}
		})
		if err := app.AddWorker(hexeract.WorkerFunc(func(ctx context.Context) error {
			close(workerRan)
			<-ctx.Done()
			ev.add("worker stopped")
			return nil
		})); err != nil {
			return err
		}
		return app.Attach(&recComponent{name: "probe", ev: ev})
	}}

	app, err := hexeract.New(hexeract.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	handled := make(chan string, 2)
	if err := hexeract.HandleFunc(app, func(context.Context, UserRegistered) error { handled <- "before"; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := app.Install(plugin); err != nil {
		t.Fatal(err)
	}
	if err := hexeract.HandleFunc(app, func(context.Context, OrderPlaced) error { handled <- "after"; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := ev.list(); len(got) != 0 {
		t.Fatalf("events before Run = %v, want none", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAsync(app, ctx)
	<-app.Running()
	if got := ev.list(); !slices.Equal(got, []string{"probe start"}) {
		t.Fatalf("events once running = %v, want the Component started", got)
	}
	select {
	case <-workerRan:
	case <-time.After(5 * time.Second):
		t.Fatal("the plugin's worker did not run")
	}
	if err := app.AddWorker(hexeract.WorkerFunc(func(context.Context) error { return nil })); err == nil {
		t.Fatal("AddWorker on a running App succeeded")
	}
	if err := app.Publish(ctx, UserRegistered{UserID: "u"}, OrderPlaced{OrderID: "o"}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case <-handled:
		case <-time.After(5 * time.Second):
			t.Fatal("a handler did not run")
		}
	}
	mu.Lock()
	got := map[string]int{"users.registered": seen["users.registered"], "orders.placed": seen["orders.placed"]}
	mu.Unlock()
	if got["users.registered"] != 1 || got["orders.placed"] != 1 {
		t.Fatalf("the plugin's middleware saw %v, want each handler once", seen)
	}
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, want := ev.list(), []string{"probe start", "worker stopped", "probe close"}; !slices.Equal(got, want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	if got := app.Plugins(); !slices.Equal(got, []string{"probe"}) {
		t.Fatalf("Plugins() = %v", got)
	}
}

// countingPublisher counts what goes through it and publishes on.
type countingPublisher struct {
	message.Publisher
	mu     sync.Mutex
	topics []string
}

func (c *countingPublisher) Publish(topic string, msgs ...*message.Message) error {
	c.mu.Lock()
	c.topics = append(c.topics, topic)
	c.mu.Unlock()
	return c.Publisher.Publish(topic, msgs...)
}

func (c *countingPublisher) Unwrap() message.Publisher { return c.Publisher }

func TestDecoratePublisher(t *testing.T) {
	app, err := hexeract.New(hexeract.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = app.Close() }()
	if err := app.DecoratePublisher(nil); err == nil {
		t.Fatal("a nil decorator was accepted")
	}
	if err := app.DecoratePublisher(func(message.Publisher) message.Publisher { return nil }); err == nil {
		t.Fatal("a decorator returning nil was accepted")
	}
	var seen *countingPublisher
	if err := app.DecoratePublisher(func(p message.Publisher) message.Publisher {
		seen = &countingPublisher{Publisher: p}
		return seen
	}); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	if err := hexeract.HandleFunc(app, func(_ context.Context, m pluginPing) error { got <- m.ID; return nil }); err != nil {
		t.Fatal(err)
	}
	stop := testenv.StartApp(t, app)
	defer stop()
	if err := app.DecoratePublisher(func(p message.Publisher) message.Publisher { return p }); err == nil {
		t.Fatal("DecoratePublisher accepted on a running App")
	}
	if err := app.Publish(context.Background(), pluginPing{ID: "p-1"}); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-got:
		if id != "p-1" {
			t.Fatalf("handler got %q", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the message published through the decorator never arrived")
	}
	seen.mu.Lock()
	defer seen.mu.Unlock()
	if len(seen.topics) != 1 || seen.topics[0] != app.TopicFor(pluginPing{}) {
		t.Fatalf("decorator saw %v, want the one publish", seen.topics)
	}
}

type pluginPing struct {
	ID string `json:"id"`
}

func (pluginPing) MessageType() string { return "plugintest.ping" }
