package mediator

import (
	"context"
	"fmt"
	"reflect"
	"unsafe"
)

// Handler handles requests of type Req and returns a Resp.
type Handler[Req, Resp any] interface {
	Handle(ctx context.Context, req Req) (Resp, error)
}

// HandlerFunc is a function that implements [Handler].
type HandlerFunc[Req, Resp any] func(ctx context.Context, req Req) (Resp, error)

// Handle calls f(ctx, req).
func (f HandlerFunc[Req, Resp]) Handle(ctx context.Context, req Req) (Resp, error) {
	return f(ctx, req)
}

// Register registers h as the handler of request type Req. A request type
// has one handler: registering a second one, or a nil one, returns an error.
func Register[Req, Resp any](m *Mediator, h Handler[Req, Resp]) error {
	if isNil(h) {
		return fmt.Errorf("%w for request %s: pass a non-nil Handler", ErrNilHandler, typeName[Req]())
	}
	f, ok := h.(HandlerFunc[Req, Resp])
	if !ok {
		f = h.Handle
	}
	return registerRequest(m, f)
}

// RegisterFunc registers fn as the handler of request type Req; Req and
// Resp are inferred from fn.
func RegisterFunc[Req, Resp any](m *Mediator, fn func(ctx context.Context, req Req) (Resp, error)) error {
	if fn == nil {
		return fmt.Errorf("%w for request %s: pass a non-nil function", ErrNilHandler, typeName[Req]())
	}
	return registerRequest(m, HandlerFunc[Req, Resp](fn))
}

// RegisterCommand registers fn as the handler of command type C, a request
// with no response, called with [Execute]. It is Register[C, struct{}].
func RegisterCommand[C any](m *Mediator, fn func(ctx context.Context, cmd C) error) error {
	if fn == nil {
		return fmt.Errorf("%w for command %s: pass a non-nil function", ErrNilHandler, typeName[C]())
	}
	return registerRequest(m, HandlerFunc[C, struct{}](func(ctx context.Context, cmd C) (struct{}, error) {
		return struct{}{}, fn(ctx, cmd)
	}))
}

func registerRequest[Req, Resp any](m *Mediator, h HandlerFunc[Req, Resp]) error {
	return m.register(func(d *definitions) error {
		k := keyOf[Req]()
		if prev, ok := d.requests[k]; ok {
			return fmt.Errorf("%w for request %s (returning %s): register one handler per request type",
				ErrDuplicateHandler, typeName[Req](), prev.responseType())
		}
		if typed, ok := d.typedRequest[k]; ok {
			if _, ok := typed.([]RequestBehavior[Req, Resp]); !ok {
				return fmt.Errorf("mediator: handler for %s returns %s but behaviors were added for another response type with UseFor",
					typeName[Req](), typeName[Resp]())
			}
		}
		d.requests[k] = &requestDefT[Req, Resp]{h: h, info: Info{
			Kind:     KindRequest,
			Name:     typeName[Req](),
			Type:     reflect.TypeFor[Req](),
			Handlers: 1,
		}}
		return nil
	})
}

// Send dispatches req to the handler of request type Req through the
// pipeline and returns its response. It returns a *[NoHandlerError] if Req
// has no handler, and an error naming both types if the handler's response
// type is not Resp. Handler errors are returned unchanged.
func Send[Req, Resp any](ctx context.Context, m *Mediator, req Req) (Resp, error) {
	if e, ok := m.load().requests[keyOf[Req]()].(*requestEntry[Req, Resp]); ok {
		return e.call(ctx, req)
	}
	var zero Resp
	return zero, sendError[Req, Resp](m)
}

// Execute dispatches the command cmd to its handler (see
// [RegisterCommand]) through the pipeline. It is Send[C, struct{}].
func Execute[C any](ctx context.Context, m *Mediator, cmd C) error {
	_, err := Send[C, struct{}](ctx, m, cmd)
	return err
}

func sendError[Req, Resp any](m *Mediator) error {
	e, ok := m.load().requests[keyOf[Req]()]
	if !ok {
		return &NoHandlerError{Kind: KindRequest, Type: typeName[Req]()}
	}
	return fmt.Errorf("mediator: the handler of request %s returns %s, not %s: call Send[%s, %s]",
		typeName[Req](), e.(responseTyper).responseType(), typeName[Resp](), typeName[Req](), e.(responseTyper).responseType())
}

type responseTyper interface{ responseType() reflect.Type }

type requestDefT[Req, Resp any] struct {
	h    HandlerFunc[Req, Resp]
	info Info
}

func (r *requestDefT[Req, Resp]) responseType() reflect.Type { return reflect.TypeFor[Resp]() }

func (r *requestDefT[Req, Resp]) build(bs []Behavior, d *definitions) any {
	call := r.h
	if typed, ok := d.typedRequest[keyOf[Req]()].([]RequestBehavior[Req, Resp]); ok {
		for i := len(typed) - 1; i >= 0; i-- {
			b, next := typed[i], call
			call = func(ctx context.Context, req Req) (Resp, error) { return b(ctx, req, next) }
		}
	}
	inner := call
	terminal := Next(func(ctx context.Context, msg any) (any, error) {
		req, ok := msg.(Req)
		if !ok {
			return nil, fmt.Errorf("mediator: a behavior passed %T to the handler of %s: pass the message it received", msg, r.info.Name)
		}
		return inner(ctx, req)
	})
	if chain, wrapped := buildChain(bs, r.info, terminal); wrapped {
		call = func(ctx context.Context, req Req) (Resp, error) {
			out, err := chain(ctx, req)
			resp, ok := out.(Resp)
			if !ok && out != nil && err == nil {
				err = fmt.Errorf("mediator: a behavior returned %T as the response of %s, want %s", out, r.info.Name, typeName[Resp]())
			}
			return resp, err
		}
	}
	return &requestEntry[Req, Resp]{call: call}
}

func (e *requestEntry[Req, Resp]) responseType() reflect.Type { return reflect.TypeFor[Resp]() }

// requestEntry is the dispatch entry of a request type: its whole pipeline
// as one function.
type requestEntry[Req, Resp any] struct {
	call HandlerFunc[Req, Resp]
}

// buildChain wraps terminal with bs (bs[0] outermost) and reports whether any
// behaviour wrapped it. A behaviour that returns nil or next unchanged stays
// out of the chain.
func buildChain(bs []Behavior, info Info, terminal Next) (Next, bool) {
	next := terminal
	wrapped := false
	for i := len(bs) - 1; i >= 0; i-- {
		n := bs[i](info, next)
		if n == nil || sameFunc(n, next) {
			continue
		}
		next, wrapped = n, true
	}
	return next, wrapped
}

// sameFunc reports whether a and b are the same function value (the same
// closure), which is how a behaviour that returns next unchanged is
// recognised. It compares the closure pointers, not the code pointers: two
// behaviours built by the same constructor share code but not closures.
func sameFunc(a, b Next) bool {
	return *(*unsafe.Pointer)(unsafe.Pointer(&a)) == *(*unsafe.Pointer)(unsafe.Pointer(&b))
}
