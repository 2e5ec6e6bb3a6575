package mediator

import (
	"context"
	"fmt"
	"reflect"
)

// Kind says which kind of invocation a behaviour wraps.
type Kind uint8

const (
	// KindRequest is the handler of a request, called by [Send] or [Execute].
	KindRequest Kind = iota + 1
	// KindNotification is one subscribed handler of a notification.
	KindNotification
	// KindPublish is a whole [Publish] call, around all subscribed handlers.
	KindPublish
	// KindStream is the handler of a stream, called by [Stream]; it runs
	// for as long as the caller iterates.
	KindStream
)

// String returns the lower-case name of k, for example "request".
func (k Kind) String() string {
	switch k {
	case KindRequest:
		return "request"
	case KindNotification:
		return "notification"
	case KindPublish:
		return "publish"
	case KindStream:
		return "stream"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Info describes the invocation a [Behavior] wraps. It is built once per
// message type (and per notification handler) when the pipeline is built.
type Info struct {
	// Kind is the kind of invocation.
	Kind Kind
	// Name is the Go type name of the message, for example
	// "orders.PlaceOrder".
	Name string
	// Type is the Go type of the message (request, notification or stream
	// request). Use it when building the pipeline, not per call.
	Type reflect.Type
	// Handler is the position of the handler among the subscribers of a
	// notification, in subscription order (KindNotification only; 0
	// otherwise).
	Handler int
	// Handlers is the number of handlers the invocation reaches: 1 for
	// requests and streams, the number of subscribers for notifications.
	Handlers int
}

// Next runs the rest of a pipeline. msg is the request or notification; the
// result is the handler's response (nil for notifications and streams).
type Next func(ctx context.Context, msg any) (any, error)

// Behavior wraps handler invocations with a cross-cutting concern. It is
// called once per message type and kind when the pipeline is built, never per
// message: it receives the invocation's [Info] and the next step, and returns
// the step that replaces it. Return next unchanged to stay out of an
// invocation at no cost.
//
// A behaviour that calls next passes the message it received; it may instead
// return without calling next (to reject or short-circuit). A response it
// returns in place of the handler's must have the handler's response type.
type Behavior func(info Info, next Next) Next

// Around returns a [Behavior] that calls fn around each request, stream and
// notification handler invocation ([KindPublish] is skipped, so fn runs once
// per handler). fn must call next to continue the pipeline.
func Around(fn func(ctx context.Context, info Info, msg any, next Next) (any, error)) Behavior {
	if fn == nil {
		return nil
	}
	return func(info Info, next Next) Next {
		if info.Kind == KindPublish {
			return next
		}
		return func(ctx context.Context, msg any) (any, error) {
			return fn(ctx, info, msg, next)
		}
	}
}

// RequestBehavior wraps the handler of one request type. It calls next to
// continue the pipeline.
type RequestBehavior[Req, Resp any] func(ctx context.Context, req Req, next HandlerFunc[Req, Resp]) (Resp, error)

// NotificationBehavior wraps every handler of one notification type. It
// calls next to continue the pipeline.
type NotificationBehavior[N any] func(ctx context.Context, n N, next NotificationHandlerFunc[N]) error

// UseFor adds a behaviour that wraps the handler of request type Req only. It
// runs inside the cross-cutting behaviours and outside the typed behaviours
// added after it. It may be added before or after the handler is
// registered; Resp must match the handler's response type.
func UseFor[Req, Resp any](m *Mediator, b RequestBehavior[Req, Resp]) error {
	if b == nil {
		return fmt.Errorf("mediator: nil RequestBehavior for %s", typeName[Req]())
	}
	return m.register(func(d *definitions) error {
		k := keyOf[Req]()
		if def, ok := d.requests[k]; ok {
			if rt := reflect.TypeFor[Resp](); def.responseType() != rt {
				return fmt.Errorf("mediator: behavior for %s has response type %s but its handler returns %s: use UseFor[%s, %s]",
					typeName[Req](), rt, def.responseType(), typeName[Req](), def.responseType())
			}
		}
		prev, ok := d.typedRequest[k]
		if !ok {
			d.typedRequest[k] = []RequestBehavior[Req, Resp]{b}
			return nil
		}
		list, ok := prev.([]RequestBehavior[Req, Resp])
		if !ok {
			return fmt.Errorf("mediator: behaviors for %s were added with another response type than %s",
				typeName[Req](), typeName[Resp]())
		}
		d.typedRequest[k] = append(list, b)
		return nil
	})
}

// UseForNotification adds a behaviour that wraps every handler of
// notification type N only. It runs inside the cross-cutting behaviours and
// outside the typed behaviours added after it.
func UseForNotification[N any](m *Mediator, b NotificationBehavior[N]) error {
	if b == nil {
		return fmt.Errorf("mediator: nil NotificationBehavior for %s", typeName[N]())
	}
	return m.register(func(d *definitions) error {
		def := notificationDefFor[N](d)
		def.behaviors = append(def.behaviors, b)
		return nil
	})
}
