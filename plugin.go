package hexeract

import (
	"errors"
	"fmt"
	"slices"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Plugin is the one way a package attaches to an [App]: Hexeract's own
// packages and third-party ones alike. A Plugin describes itself with Name
// and, in Install, uses the App's public API to register what it brings:
//
//   - handlers: [Handle], [HandleFunc], [App.AddHandler], [App.AddPublisherHandler];
//   - middleware: [App.Use];
//   - background workers: [App.AddWorker];
//   - publisher decorators: [App.DecoratePublisher];
//   - tables in the App's store: [App.AddMigrator], [App.StoreTable];
//   - start/stop hooks and per-App state: [App.Attach], [AttachOnce] (a [Component]).
//
// Install it with [App.Install] or with the [WithPlugins] option of [New].
// See docs/getting-started.md, "Plugins", and examples/audit-log for a
// third-party-style plugin.
type Plugin interface {
	// Name names the plugin; names are unique in an App, and
	// [App.Plugins] lists them so a console or a log can describe the App.
	Name() string
	// Install registers the plugin's handlers, middleware, workers and
	// Components on app. It is called once per App, by [App.Install].
	Install(app *App) error
}

// WithPlugins installs plugins on the App built by [New], in the order
// given, after every other option has been applied (so a plugin sees the
// App's transport, logger, topic naming and codec). New fails with the
// first error of [App.Install], having closed the App it built.
func WithPlugins(p ...Plugin) Option {
	return func(c *config) { c.plugins = append(c.plugins, p...) }
}

// Install installs p on the App: it calls p.Install(a) and records p's
// name, which [App.Plugins] then lists. A nil plugin, an empty name, a name
// already installed and an App already closed are errors; so is any error
// p.Install returns (wrapped with p's name). What a failed Install
// registered before it failed stays on the App: close that App rather than
// run it.
//
// Installing while [App.Run] runs follows the rules of what the plugin
// registers: a Component ([App.Attach]) is started at once, a handler
// starts at once, middleware ([App.Use]) reaches only the handlers added
// after it, and a worker ([App.AddWorker]) is refused. Install plugins
// before Run, or with [WithPlugins], so that they reach every handler.
func (a *App) Install(p Plugin) error {
	if p == nil {
		return errors.New("hexeract: App.Install with a nil Plugin")
	}
	name := p.Name()
	if name == "" {
		return fmt.Errorf("hexeract: plugin %T has an empty Name", p)
	}
	a.pluginMu.Lock()
	if slices.Contains(a.plugins, name) || a.installing[name] {
		a.pluginMu.Unlock()
		return fmt.Errorf("hexeract: a plugin named %q is already installed", name)
	}
	if a.isClosed() {
		a.pluginMu.Unlock()
		return fmt.Errorf("hexeract: plugin %q installed after App.Close; build a new App with hexeract.New", name)
	}
	if a.installing == nil {
		a.installing = make(map[string]bool)
	}
	// The name is reserved while p installs, without holding the lock, so a
	// plugin may install the plugins it depends on.
	a.installing[name] = true
	a.pluginMu.Unlock()
	err := p.Install(a)
	a.pluginMu.Lock()
	defer a.pluginMu.Unlock()
	delete(a.installing, name)
	if err != nil {
		return fmt.Errorf("hexeract: install plugin %q: %w", name, err)
	}
	a.plugins = append(a.plugins, name)
	return nil
}

// Plugins returns the names of the plugins installed on the App, in
// install order.
func (a *App) Plugins() []string {
	a.pluginMu.Lock()
	defer a.pluginMu.Unlock()
	return slices.Clone(a.plugins)
}

// AddWorker adds a background worker that [App.Run] runs beside the router,
// like the [WithWorker] option; it is how a [Plugin] adds one. It must be
// called before Run: a worker given to a running, stopped or closed App is
// refused (attach a [Component] to start work on a running App).
func (a *App) AddWorker(w Worker) error {
	if f, ok := w.(WorkerFunc); w == nil || (ok && f == nil) {
		return errors.New("hexeract: App.AddWorker with a nil Worker")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed || a.running {
		return errors.New("hexeract: App.AddWorker called after App.Run or App.Close; add workers before Run (or attach a Component, which a running App starts at once)")
	}
	a.workers = append(a.workers, w)
	return nil
}

// DecoratePublisher wraps the App's publisher with d: from then on
// [App.Publish], [App.Publisher] and the handlers added afterwards with an
// outgoing topic publish through d's result. It is how a [Plugin] observes
// or changes what the App publishes (an audit of outgoing messages, a
// header it stamps, a compression step). It must be called before
// [App.Run]; the dead-letter step keeps the publisher it was built with.
//
// d gets the current publisher (the transport's, wrapped by the App's
// correlation and tracing steps and by earlier decorators) and returns one
// that publishes through it. Its Close must close the wrapped publisher,
// and it should have an Unwrap() message.Publisher method returning it, so
// that request/reply can still find the transport's reply channel.
func (a *App) DecoratePublisher(d func(message.Publisher) message.Publisher) error {
	if d == nil {
		return errors.New("hexeract: App.DecoratePublisher with a nil function")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.closed || a.running:
		return errors.New("hexeract: App.DecoratePublisher called after App.Run or App.Close; decorate the publisher before Run")
	case a.publisher == nil:
		return errors.New("hexeract: App.DecoratePublisher on an App without a publisher")
	}
	p := d(a.publisher)
	if p == nil {
		return errors.New("hexeract: the function given to App.DecoratePublisher returned nil")
	}
	a.publisher = p
	return nil
}
