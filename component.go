package hexeract

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Component is a part attached to an [App] that lives as long as the App:
// the App starts it when it runs and closes it when it is closed. It is how
// a package keeps per-App state and lifecycle on the App itself instead of
// in a package-level registry: Hexeract's own request/reply client and saga
// runtimes are Components, and third-party packages attach theirs the same
// way (with [App.Attach], or [AttachOnce] for state a package keeps once
// per App). A background loop that runs until cancelled is a [Worker]
// instead; both are owned by the App.
//
// Lifecycle (see docs/getting-started.md, "Lifecycle"):
//
//   - [App.Run] calls Start on every attached Component, in the order they
//     were attached, before the router takes its first message; a
//     Component attached while the App runs is started at once. An error
//     from Start stops Run with that error (Close still closes every
//     attached Component).
//   - [App.Close] closes, in this order: the router (it stops taking
//     messages, and the handlers in flight finish, up to the router's
//     CloseTimeout); the workers (their context is cancelled and Close waits
//     for Run to return, so an outbox relay settles its batch in flight);
//     the Components, in reverse attach order, each once; the transport the
//     App created itself (a publisher or subscriber passed in is left open).
//
// Close is called whether or not Start was: a Component that started some
// of its work lazily (on first use, before Run) releases it there.
type Component interface {
	// Start starts the Component. It must not block: it starts goroutines
	// or subscriptions that run until Close. ctx carries the values of Run's
	// context and is cancelled when Run returns; do not bind work that
	// must outlive the router's drain to it.
	Start(ctx context.Context) error
	// Close stops what Start (or earlier use) started and waits for it to
	// end. The App calls it once, after its router stopped and its workers
	// returned.
	Close() error
}

// Attach attaches c to the App: [App.Run] starts it and [App.Close] closes
// it (see [Component] for the order). Attaching to a running App starts c
// at once; attaching to a closed App, or a nil Component, is an error.
func (a *App) Attach(c Component) error {
	if c == nil {
		return errors.New("hexeract: App.Attach with a nil Component")
	}
	a.compMu.Lock()
	defer a.compMu.Unlock()
	return a.attachLocked(c)
}

// attachLocked attaches c; the caller holds a.compMu.
func (a *App) attachLocked(c Component) error {
	if a.compClosed {
		return fmt.Errorf("hexeract: %T attached after App.Close; build a new App with hexeract.New", c)
	}
	if a.compStarted {
		if err := c.Start(a.compCtx); err != nil {
			return fmt.Errorf("hexeract: start %T: %w", c, err)
		}
	}
	a.components = append(a.components, c)
	return nil
}

// Attached returns the first Component of type T attached to app, and
// whether there is one. Packages use it to find the per-App state they
// attached (T is then usually an unexported type of theirs).
func Attached[T Component](app *App) (T, bool) {
	if app == nil {
		var zero T
		return zero, false
	}
	app.compMu.Lock()
	defer app.compMu.Unlock()
	return attached[T](app)
}

func attached[T Component](app *App) (T, bool) {
	for _, c := range app.components {
		if t, ok := c.(T); ok {
			return t, true
		}
	}
	var zero T
	return zero, false
}

// AttachOnce returns the Component of type T attached to app, creating it
// with create and attaching it when there is none: the way a package keeps
// one piece of state per App. Concurrent calls create it once. create must
// not attach anything to app itself (it may add handlers). It fails like
// [App.Attach], or with create's error.
func AttachOnce[T Component](app *App, create func() (T, error)) (T, error) {
	var zero T
	if app == nil {
		return zero, errors.New("hexeract: AttachOnce with a nil App")
	}
	app.compMu.Lock()
	defer app.compMu.Unlock()
	if c, ok := attached[T](app); ok {
		return c, nil
	}
	if app.compClosed {
		return zero, fmt.Errorf("hexeract: %T attached after App.Close; build a new App with hexeract.New", zero)
	}
	c, err := create()
	if err != nil {
		return zero, err
	}
	if err := app.attachLocked(c); err != nil {
		return zero, err
	}
	return c, nil
}

// startComponents starts the attached Components in attach order, with
// ctx; Components attached later start when they are attached.
func (a *App) startComponents(ctx context.Context) error {
	a.compMu.Lock()
	defer a.compMu.Unlock()
	if a.compClosed {
		return errors.New("hexeract: App.Run called after App.Close; build a new App with hexeract.New")
	}
	a.compStarted, a.compCtx = true, ctx
	for _, c := range a.components {
		if err := c.Start(ctx); err != nil {
			return fmt.Errorf("hexeract: start %T: %w", c, err)
		}
	}
	return nil
}

// closeComponents closes the attached Components in reverse attach order,
// once; later calls do nothing.
func (a *App) closeComponents() error {
	a.compMu.Lock()
	if a.compClosed {
		a.compMu.Unlock()
		return nil
	}
	a.compClosed = true
	comps := slices.Clone(a.components)
	a.compMu.Unlock()
	var err error
	for _, c := range slices.Backward(comps) {
		if cerr := c.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("hexeract: close %T: %w", c, cerr))
		}
	}
	return err
}
