package mediator

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Mediator holds handler registrations and dispatches messages to them.
// Create one with [New]; the zero value is not usable. A Mediator is safe for
// concurrent use: registrations take a lock, dispatch never does.
type Mediator struct {
	mu       sync.Mutex
	defs     definitions
	strategy Strategy

	// tab is the immutable dispatch table; nil after a registration until
	// the next dispatch rebuilds it.
	tab atomic.Pointer[table]
}

// Option configures a [Mediator] in [New].
type Option func(*Mediator) error

// WithBehaviors adds behaviours that wrap every handler invocation, in the
// given order (the first is the outermost).
func WithBehaviors(b ...Behavior) Option {
	return func(m *Mediator) error { return m.addBehaviors(b) }
}

// WithPublishStrategy sets how [Publish] runs the handlers of a
// notification. The default is [StopOnFirstError].
func WithPublishStrategy(s Strategy) Option {
	return func(m *Mediator) error {
		if !s.valid() {
			return fmt.Errorf("mediator: unknown publish strategy %d: use StopOnFirstError, RunAll or Parallel", s)
		}
		m.strategy = s
		return nil
	}
}

// New returns a Mediator configured by opts.
func New(opts ...Option) (*Mediator, error) {
	m := &Mediator{}
	m.defs.requests = map[typeKey]requestDef{}
	m.defs.notifications = map[typeKey]notificationDef{}
	m.defs.streams = map[typeKey]streamDef{}
	m.defs.typedRequest = map[typeKey]any{}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(m); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Use adds behaviours that wrap every handler invocation, after the ones
// already added (so they run inside them). Handlers registered before Use
// are wrapped too: chains are rebuilt at the next dispatch.
func (m *Mediator) Use(b ...Behavior) error {
	return m.addBehaviors(b)
}

func (m *Mediator) addBehaviors(b []Behavior) error {
	for i, x := range b {
		if x == nil {
			return fmt.Errorf("mediator: behavior %d is nil: pass a non-nil Behavior", i)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.defs.behaviors = append(m.defs.behaviors, b...)
	m.tab.Store(nil)
	return nil
}

// typeKey identifies a Go type during dispatch. It is the address of the
// runtime type descriptor of *T, which is unique per type within a program
// and is obtained without reflection.
type typeKey unsafe.Pointer

// keyOf returns the typeKey of T. It reads the type word of an interface
// holding a nil *T; it does not allocate.
func keyOf[T any]() typeKey {
	var p any = (*T)(nil)
	return typeKey((*[2]unsafe.Pointer)(unsafe.Pointer(&p))[0])
}

// typeName returns the Go name of T as errors and behaviours show it, for
// example "orders.PlaceOrder" or "*orders.PlaceOrder".
func typeName[T any]() string {
	return reflect.TypeFor[T]().String()
}

// definitions is the mutable registration state, guarded by Mediator.mu.
type definitions struct {
	behaviors     []Behavior
	requests      map[typeKey]requestDef
	notifications map[typeKey]notificationDef
	streams       map[typeKey]streamDef
	// typedRequest holds []RequestBehavior[Req, Resp] per request type,
	// possibly added before the handler.
	typedRequest map[typeKey]any
}

// A requestDef, notificationDef or streamDef builds the dispatch entry of
// one message type from the cross-cutting behaviours.
type (
	requestDef interface {
		build(bs []Behavior, d *definitions) any
		responseType() reflect.Type
	}
	notificationDef interface {
		build(bs []Behavior) any
	}
	streamDef interface {
		build(bs []Behavior) any
	}
)

// table is the immutable dispatch table built from definitions.
type table struct {
	requests      map[typeKey]any // *requestEntry[Req, Resp]
	notifications map[typeKey]any // *notificationEntry[N]
	streams       map[typeKey]any // *streamEntry[Req, Item]
	strategy      Strategy
}

// load returns the current dispatch table, building it if a registration
// invalidated it. The fast path is one atomic load.
func (m *Mediator) load() *table {
	if t := m.tab.Load(); t != nil {
		return t
	}
	return m.freeze()
}

func (m *Mediator) freeze() *table {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t := m.tab.Load(); t != nil {
		return t
	}
	bs := m.defs.behaviors
	t := &table{
		requests:      make(map[typeKey]any, len(m.defs.requests)),
		notifications: make(map[typeKey]any, len(m.defs.notifications)),
		streams:       make(map[typeKey]any, len(m.defs.streams)),
		strategy:      m.strategy,
	}
	for k, d := range m.defs.requests {
		t.requests[k] = d.build(bs, &m.defs)
	}
	for k, d := range m.defs.notifications {
		if e := d.build(bs); e != nil {
			t.notifications[k] = e
		}
	}
	for k, d := range m.defs.streams {
		t.streams[k] = d.build(bs)
	}
	m.tab.Store(t)
	return t
}

// register runs fn under the registration lock and invalidates the table.
func (m *Mediator) register(fn func(d *definitions) error) error {
	if m == nil {
		return errors.New("mediator: nil *Mediator: create one with mediator.New")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := fn(&m.defs); err != nil {
		return err
	}
	m.tab.Store(nil)
	return nil
}

// isNil reports whether v is nil or holds a nil pointer, func, map, chan,
// slice or interface. It is used at registration only.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Func, reflect.Map, reflect.Chan, reflect.Slice, reflect.Interface:
		return rv.IsNil()
	}
	return false
}
