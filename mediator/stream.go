package mediator

import (
	"context"
	"fmt"
	"iter"
	"reflect"
)

// StreamHandler handles stream requests of type Req: it passes each result
// to yield, in order, and stops as soon as yield returns false (the caller
// stopped iterating; ctx is then cancelled too). It must not call yield
// concurrently or after it returned.
type StreamHandler[Req, Item any] interface {
	Stream(ctx context.Context, req Req, yield func(Item) bool) error
}

// StreamHandlerFunc is a function that implements [StreamHandler].
type StreamHandlerFunc[Req, Item any] func(ctx context.Context, req Req, yield func(Item) bool) error

// Stream calls f(ctx, req, yield).
func (f StreamHandlerFunc[Req, Item]) Stream(ctx context.Context, req Req, yield func(Item) bool) error {
	return f(ctx, req, yield)
}

// RegisterStream registers h as the handler of stream request type Req. A
// stream request type has one handler: registering a second one, or a nil
// one, returns an error.
func RegisterStream[Req, Item any](m *Mediator, h StreamHandler[Req, Item]) error {
	if isNil(h) {
		return fmt.Errorf("%w for stream %s: pass a non-nil StreamHandler", ErrNilHandler, typeName[Req]())
	}
	f, ok := h.(StreamHandlerFunc[Req, Item])
	if !ok {
		f = h.Stream
	}
	return registerStream(m, f)
}

// RegisterStreamFunc registers fn as the handler of stream request type
// Req; Req and Item are inferred from fn.
func RegisterStreamFunc[Req, Item any](m *Mediator, fn func(ctx context.Context, req Req, yield func(Item) bool) error) error {
	if fn == nil {
		return fmt.Errorf("%w for stream %s: pass a non-nil function", ErrNilHandler, typeName[Req]())
	}
	return registerStream(m, StreamHandlerFunc[Req, Item](fn))
}

func registerStream[Req, Item any](m *Mediator, h StreamHandlerFunc[Req, Item]) error {
	return m.register(func(d *definitions) error {
		k := keyOf[Req]()
		if _, ok := d.streams[k]; ok {
			return fmt.Errorf("%w for stream %s: register one handler per stream request type", ErrDuplicateHandler, typeName[Req]())
		}
		d.streams[k] = &streamDefT[Req, Item]{h: h}
		return nil
	})
}

// Stream returns the results of the stream handler of Req as an iterator of
// (item, nil) pairs. If the handler fails, the last pair is (zero, err);
// if Req has no handler (or its handler yields another item type), the only
// pair is (zero, err). The handler runs on the caller's goroutine while the
// caller iterates; when the caller stops early, the handler's yield returns
// false and its context is cancelled.
func Stream[Req, Item any](ctx context.Context, m *Mediator, req Req) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) {
		e, ok := m.load().streams[keyOf[Req]()].(*streamEntry[Req, Item])
		if !ok {
			var zero Item
			yield(zero, streamError[Req, Item](m))
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		st := &streamState[Item]{yield: yield, cancel: cancel}
		var err error
		if e.chain != nil {
			_, err = e.chain(context.WithValue(ctx, streamStateKey{}, st), req)
		} else {
			err = e.h(ctx, req, st.emit)
		}
		st.done = true
		if st.panicked {
			// The caller's loop body panicked inside yield: resume that
			// panic now that the handler has returned.
			panic(st.panicValue)
		}
		if err != nil && !st.stopped {
			var zero Item
			yield(zero, err)
		}
	}
}

func streamError[Req, Item any](m *Mediator) error {
	e, ok := m.load().streams[keyOf[Req]()]
	if !ok {
		return &NoHandlerError{Kind: KindStream, Type: typeName[Req]()}
	}
	return fmt.Errorf("mediator: the handler of stream %s yields %s, not %s: call Stream[%s, %s]",
		typeName[Req](), e.(itemTyper).itemType(), typeName[Item](), typeName[Req](), e.(itemTyper).itemType())
}

type itemTyper interface{ itemType() reflect.Type }

// streamStateKey carries the *streamState through the behaviours of a
// stream to its handler.
type streamStateKey struct{}

// streamState connects the handler's yield to the caller's loop.
type streamState[Item any] struct {
	yield      func(Item, error) bool
	cancel     context.CancelFunc
	stopped    bool // the caller stopped iterating
	done       bool // the handler returned
	panicked   bool // the caller's loop body panicked
	panicValue any
}

// emit is the yield function the handler sees.
func (s *streamState[Item]) emit(item Item) (more bool) {
	if s.stopped || s.done {
		return false
	}
	defer func() {
		if r := recover(); r != nil {
			s.panicked, s.panicValue = true, r
			s.stopped = true
			s.cancel()
			more = false
		}
	}()
	if !s.yield(item, nil) {
		s.stopped = true
		s.cancel()
		return false
	}
	return true
}

type streamDefT[Req, Item any] struct {
	h StreamHandlerFunc[Req, Item]
}

// streamEntry is the dispatch entry of a stream request type.
type streamEntry[Req, Item any] struct {
	h     StreamHandlerFunc[Req, Item]
	chain Next // the behaviours around h, or nil
}

func (e *streamEntry[Req, Item]) itemType() reflect.Type { return reflect.TypeFor[Item]() }

func (d *streamDefT[Req, Item]) build(bs []Behavior) any {
	e := &streamEntry[Req, Item]{h: d.h}
	name := typeName[Req]()
	terminal := Next(func(ctx context.Context, msg any) (any, error) {
		req, ok := msg.(Req)
		if !ok {
			return nil, fmt.Errorf("mediator: a behavior passed %T to the handler of %s: pass the message it received", msg, name)
		}
		st, ok := ctx.Value(streamStateKey{}).(*streamState[Item])
		if !ok {
			return nil, fmt.Errorf("mediator: a behavior called the stream handler of %s with a context not derived from the one it received", name)
		}
		return nil, d.h(ctx, req, st.emit)
	})
	if chain, wrapped := buildChain(bs, Info{Kind: KindStream, Name: name, Type: reflect.TypeFor[Req](), Handlers: 1}, terminal); wrapped {
		e.chain = chain
	}
	return e
}
