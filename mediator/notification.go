package mediator

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"sync"
)

// Strategy says how [Publish] runs the handlers of a notification.
type Strategy uint8

const (
	// StopOnFirstError runs the handlers one after another, in
	// subscription order, and returns the first error; later handlers do
	// not run. It is the default.
	StopOnFirstError Strategy = iota
	// RunAll runs every handler one after another, in subscription order,
	// and returns their errors joined with errors.Join.
	RunAll
	// Parallel runs every handler on its own goroutine, waits for all of
	// them and returns their errors joined with errors.Join (in
	// subscription order). A handler panic is re-raised on the caller's
	// goroutine as a *PanicError after all handlers returned; use the
	// [Recover] behaviour to turn panics into errors instead.
	Parallel

	numStrategies = 3
)

func (s Strategy) valid() bool { return s < numStrategies }

// String returns the name of the strategy, for example "RunAll".
func (s Strategy) String() string {
	switch s {
	case StopOnFirstError:
		return "StopOnFirstError"
	case RunAll:
		return "RunAll"
	case Parallel:
		return "Parallel"
	}
	return fmt.Sprintf("Strategy(%d)", uint8(s))
}

// NotificationHandler handles notifications of type N.
type NotificationHandler[N any] interface {
	Handle(ctx context.Context, n N) error
}

// NotificationHandlerFunc is a function that implements
// [NotificationHandler].
type NotificationHandlerFunc[N any] func(ctx context.Context, n N) error

// Handle calls f(ctx, n).
func (f NotificationHandlerFunc[N]) Handle(ctx context.Context, n N) error { return f(ctx, n) }

// Subscribe adds h to the handlers of notification type N. A notification
// type may have any number of handlers; they run in subscription order (see
// [Strategy]). A nil handler returns an error.
func Subscribe[N any](m *Mediator, h NotificationHandler[N]) error {
	if isNil(h) {
		return fmt.Errorf("%w for notification %s: pass a non-nil NotificationHandler", ErrNilHandler, typeName[N]())
	}
	f, ok := h.(NotificationHandlerFunc[N])
	if !ok {
		f = h.Handle
	}
	return subscribe(m, f)
}

// SubscribeFunc adds fn to the handlers of notification type N; N is
// inferred from fn.
func SubscribeFunc[N any](m *Mediator, fn func(ctx context.Context, n N) error) error {
	if fn == nil {
		return fmt.Errorf("%w for notification %s: pass a non-nil function", ErrNilHandler, typeName[N]())
	}
	return subscribe(m, NotificationHandlerFunc[N](fn))
}

func subscribe[N any](m *Mediator, f NotificationHandlerFunc[N]) error {
	return m.register(func(d *definitions) error {
		def := notificationDefFor[N](d)
		def.handlers = append(def.handlers, f)
		return nil
	})
}

// Publish delivers n to every handler of notification type N, with the
// mediator's publish strategy (see [WithPublishStrategy]). A notification
// with no handlers is not an error: Publish returns nil.
func Publish[N any](ctx context.Context, m *Mediator, n N) error {
	t := m.load()
	if e, ok := t.notifications[keyOf[N]()].(*notificationEntry[N]); ok {
		return e.publish(ctx, t.strategy, n)
	}
	return nil
}

// PublishWith is [Publish] with the strategy s for this call.
func PublishWith[N any](ctx context.Context, m *Mediator, s Strategy, n N) error {
	if !s.valid() {
		return fmt.Errorf("mediator: unknown publish strategy %d: use StopOnFirstError, RunAll or Parallel", s)
	}
	if e, ok := m.load().notifications[keyOf[N]()].(*notificationEntry[N]); ok {
		return e.publish(ctx, s, n)
	}
	return nil
}

type notificationDefT[N any] struct {
	handlers  []NotificationHandlerFunc[N]
	behaviors []NotificationBehavior[N]
}

func notificationDefFor[N any](d *definitions) *notificationDefT[N] {
	k := keyOf[N]()
	if def, ok := d.notifications[k]; ok {
		return def.(*notificationDefT[N])
	}
	def := &notificationDefT[N]{}
	d.notifications[k] = def
	return def
}

// notificationEntry is the dispatch entry of a notification type.
type notificationEntry[N any] struct {
	name string
	// typed holds the handlers wrapped in the typed behaviours; it is used
	// when no cross-cutting behaviour wraps a handler.
	typed []func(context.Context, N) error
	// erased holds the handlers wrapped in all behaviours, or is nil.
	erased []func(context.Context, any) error
	// pub holds, per strategy, the chain of behaviours that wrap the whole
	// fan-out (KindPublish), or nil entries when none does.
	pub [numStrategies]Next
}

func (d *notificationDefT[N]) build(bs []Behavior) any {
	name, rt, n := typeName[N](), reflect.TypeFor[N](), len(d.handlers)
	if n == 0 {
		// Only typed behaviours so far: Publish has nothing to run (and
		// no KindPublish behaviour, such as a span, runs for it).
		return nil
	}
	e := &notificationEntry[N]{name: name, typed: make([]func(context.Context, N) error, n)}
	for i, h := range d.handlers {
		call := h
		for j := len(d.behaviors) - 1; j >= 0; j-- {
			b, next := d.behaviors[j], call
			call = func(ctx context.Context, n N) error { return b(ctx, n, next) }
		}
		e.typed[i] = call
	}
	if len(bs) == 0 {
		return e
	}
	erased := make([]func(context.Context, any) error, n)
	anyWrapped := false
	for i, h := range e.typed {
		terminal := Next(func(ctx context.Context, msg any) (any, error) {
			v, ok := msg.(N)
			if !ok {
				return nil, fmt.Errorf("mediator: a behavior passed %T to a handler of %s: pass the message it received", msg, name)
			}
			return nil, h(ctx, v)
		})
		chain, wrapped := buildChain(bs, Info{Kind: KindNotification, Name: name, Type: rt, Handler: i, Handlers: n}, terminal)
		anyWrapped = anyWrapped || wrapped
		erased[i] = func(ctx context.Context, msg any) error {
			_, err := chain(ctx, msg)
			return err
		}
	}
	if anyWrapped {
		e.erased = erased
	}
	for s := range Strategy(numStrategies) {
		terminal := Next(func(ctx context.Context, msg any) (any, error) { return nil, e.fanout(ctx, s, msg) })
		if chain, wrapped := buildChain(bs, Info{Kind: KindPublish, Name: name, Type: rt, Handlers: n}, terminal); wrapped {
			e.pub[s] = chain
		}
	}
	return e
}

func (e *notificationEntry[N]) publish(ctx context.Context, s Strategy, n N) error {
	if e.erased == nil && e.pub[s] == nil && (s == StopOnFirstError || s == RunAll && len(e.typed) == 1) {
		// The common case, without the strategy switch. Parallel always
		// goes through run, which turns a panic into a *PanicError even
		// with a single handler.
		for _, h := range e.typed {
			if err := h(ctx, n); err != nil {
				return err
			}
		}
		return nil
	}
	if p := e.pub[s]; p != nil {
		_, err := p(ctx, n)
		return err
	}
	if e.erased != nil {
		return run(ctx, s, e.name, e.erased, any(n))
	}
	return run(ctx, s, e.name, e.typed, n)
}

// fanout runs the handlers for a message that went through the KindPublish
// behaviours.
func (e *notificationEntry[N]) fanout(ctx context.Context, s Strategy, msg any) error {
	if e.erased != nil {
		return run(ctx, s, e.name, e.erased, msg)
	}
	n, ok := msg.(N)
	if !ok {
		return fmt.Errorf("mediator: a behavior passed %T to the handlers of %s: pass the message it received", msg, e.name)
	}
	return run(ctx, s, e.name, e.typed, n)
}

// run calls the handlers hs with msg according to s.
func run[M any](ctx context.Context, s Strategy, name string, hs []func(context.Context, M) error, msg M) error {
	switch s {
	case RunAll:
		var errs []error
		for _, h := range hs {
			if err := h(ctx, msg); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	case Parallel:
		return runParallel(ctx, name, hs, msg)
	}
	for _, h := range hs {
		if err := h(ctx, msg); err != nil {
			return err
		}
	}
	return nil
}

func runParallel[M any](ctx context.Context, name string, hs []func(context.Context, M) error, msg M) error {
	errs := make([]error, len(hs))
	panics := make([]*PanicError, len(hs))
	call := func(i int) {
		defer func() {
			if r := recover(); r != nil {
				panics[i] = &PanicError{Kind: KindNotification, Type: name, Value: r, Stack: debug.Stack()}
			}
		}()
		errs[i] = hs[i](ctx, msg)
	}
	var wg sync.WaitGroup
	for i := 1; i < len(hs); i++ {
		wg.Go(func() { call(i) })
	}
	call(0)
	wg.Wait()
	for _, p := range panics {
		if p != nil {
			panic(p)
		}
	}
	return errors.Join(errs...)
}
