package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/router"
)

// Definition describes a saga whose instances keep a state of type S: the
// events that start an instance, the events it handles, its timeouts and its
// compensations. Build it with [Define] and the generic functions
// [StartedBy], [Handles], [OnTimeout] and [OnCompensate]; then attach it to
// an App with [Register]. A Definition is not safe for concurrent
// modification; define it once at start-up.
//
// S must encode to and from JSON: the state is stored as JSON between
// messages.
type Definition[S any] struct {
	name     string
	events   []*eventDef[S]
	wires    map[string]bool
	timeouts map[string]stepFunc[S]
	comps    map[string]stepFunc[S]
	errs     []error
}

// stepFunc runs an in-process step (a timeout or a compensation) on its
// JSON payload.
type stepFunc[S any] func(c *Context[S], state *S, payload []byte) error

type eventDef[S any] struct {
	wire  string
	start bool
	// add registers the typed App handler for the event.
	add func(app *hexeract.App, rt *runtime[S]) error
}

// Define starts the definition of a saga. name identifies the saga in the
// store, in handler names and in the CLI; it must be non-empty and unique in
// an App.
func Define[S any](name string) *Definition[S] {
	d := &Definition[S]{
		name:     name,
		wires:    make(map[string]bool),
		timeouts: make(map[string]stepFunc[S]),
		comps:    make(map[string]stepFunc[S]),
	}
	if name == "" {
		d.errs = append(d.errs, errors.New("saga: Define needs a non-empty saga name"))
	}
	return d
}

// Name returns the saga name.
func (d *Definition[S]) Name() string { return d.name }

// Err returns the definition's mistakes (an event handled twice, a nil
// handler, ...) joined, or nil. [Register] returns the same error.
func (d *Definition[S]) Err() error { return errors.Join(d.errs...) }

// StartedBy declares an event that starts an instance. correlate returns the
// instance key of an event (for example an order id). When the instance
// exists already (a redelivery, or a race with another start event), the
// handler runs on the existing state, so a start handler must be written to
// also work as an update. A start event for a finished instance that is
// still kept ([WithRetention]) is ignored.
func StartedBy[S any, E router.Message](d *Definition[S], correlate func(E) string, handler func(c *Context[S], state *S, e E) error) {
	addEvent(d, true, correlate, handler)
}

// Handles declares an event handled by an existing instance. correlate
// returns the instance key. An event whose instance does not exist gets the
// outcome set with [WithUnknownInstance].
func Handles[S any, E router.Message](d *Definition[S], correlate func(E) string, handler func(c *Context[S], state *S, e E) error) {
	addEvent(d, false, correlate, handler)
}

func addEvent[S any, E router.Message](d *Definition[S], start bool, correlate func(E) string, handler func(*Context[S], *S, E) error) {
	wire, err := router.TypeName[E]()
	if err != nil {
		d.errs = append(d.errs, fmt.Errorf("saga %s: %w", d.name, err))
		return
	}
	if correlate == nil || handler == nil {
		d.errs = append(d.errs, fmt.Errorf("saga %s: event %s needs a correlate function and a handler", d.name, wire))
		return
	}
	if d.wires[wire] {
		d.errs = append(d.errs, fmt.Errorf("saga %s: event %s is declared twice; declare each event type once with StartedBy or Handles", d.name, wire))
		return
	}
	d.wires[wire] = true
	d.events = append(d.events, &eventDef[S]{
		wire:  wire,
		start: start,
		add: func(app *hexeract.App, rt *runtime[S]) error {
			return hexeract.HandleFunc(app, func(ctx context.Context, e E) error {
				key := correlate(e)
				if key == "" {
					return router.Permanent(fmt.Errorf("saga %s: event %s has an empty correlation key", d.name, wire))
				}
				return rt.runPhase(ctx, key, wire, start, phaseEvent, nil, func(c *Context[S], s *S) error { return handler(c, s, e) })
			}, hexeract.WithName("saga."+d.name+"."+wire))
		},
	})
}

// OnTimeout declares how the saga handles the timeout message type T
// scheduled with [Context.Timeout]. Timeout messages travel wrapped, with the
// instance key and a token: they need no correlate function, and a timeout
// that was cancelled, replaced or outlived by its instance is ignored.
func OnTimeout[S any, T router.Message](d *Definition[S], handler func(c *Context[S], state *S, t T) error) {
	addStep(d, d.timeouts, "timeout", handler)
}

// OnCompensate declares how the saga runs a compensation of type C
// registered with [Context.Compensate], in-process in the saga's transaction
// (it may send messages through its Context). A compensation type without
// OnCompensate is sent as a message on its own topic instead, for another
// service to perform.
func OnCompensate[S any, C router.Message](d *Definition[S], handler func(c *Context[S], state *S, comp C) error) {
	addStep(d, d.comps, "compensation", handler)
}

func addStep[S any, T router.Message](d *Definition[S], into map[string]stepFunc[S], what string, handler func(*Context[S], *S, T) error) {
	wire, err := router.TypeName[T]()
	if err != nil {
		d.errs = append(d.errs, fmt.Errorf("saga %s: %w", d.name, err))
		return
	}
	if handler == nil {
		d.errs = append(d.errs, fmt.Errorf("saga %s: nil %s handler for %s", d.name, what, wire))
		return
	}
	if _, dup := into[wire]; dup {
		d.errs = append(d.errs, fmt.Errorf("saga %s: %s %s is declared twice", d.name, what, wire))
		return
	}
	into[wire] = func(c *Context[S], s *S, payload []byte) error {
		var v T
		if err := json.Unmarshal(payload, &v); err != nil {
			return router.Permanent(fmt.Errorf("saga %s key %q: decode %s %s: %w", d.name, c.key, what, wire, err))
		}
		return handler(c, s, v)
	}
}
