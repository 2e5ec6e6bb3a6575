package mediator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"runtime/debug"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Logging returns a behaviour that logs each request, stream and
// notification handler invocation to logger (slog.Default() if nil): failures
// at Error level with the error, successes at Debug level. Both carry the
// attributes kind, type, handler (notifications only) and duration.
func Logging(logger *slog.Logger) Behavior {
	return func(info Info, next Next) Next {
		if info.Kind == KindPublish {
			return next
		}
		attrs := []slog.Attr{slog.String("kind", info.Kind.String()), slog.String("type", info.Name)}
		if info.Kind == KindNotification {
			attrs = append(attrs, slog.Int("handler", info.Handler))
		}
		return func(ctx context.Context, msg any) (any, error) {
			l := logger
			if l == nil {
				l = slog.Default()
			}
			start := time.Now()
			out, err := next(ctx, msg)
			if err != nil {
				l.LogAttrs(ctx, slog.LevelError, "mediator: handler failed",
					append(attrs[:len(attrs):len(attrs)], slog.Duration("duration", time.Since(start)), slog.Any("error", err))...)
			} else if l.Enabled(ctx, slog.LevelDebug) {
				l.LogAttrs(ctx, slog.LevelDebug, "mediator: handled",
					append(attrs[:len(attrs):len(attrs)], slog.Duration("duration", time.Since(start)))...)
			}
			return out, err
		}
	}
}

// TracerName is the instrumentation name of the tracer used by [Tracing].
const TracerName = "github.com/hexeract/hexeract/mediator"

// Tracing returns a behaviour that starts an OpenTelemetry span for each
// [Send] (named "mediator.send <type>"), each [Publish] that reaches at least
// one handler ("mediator.publish <type>", around all handlers) and each
// [Stream] ("mediator.stream <type>", for as long as the caller iterates).
// The span is a child of the span in the caller's context, and handlers see
// it in theirs. A failure is recorded on the span and sets its status to
// Error. tp is the TracerProvider to use; nil means otel.GetTracerProvider().
func Tracing(tp trace.TracerProvider) Behavior {
	return func(info Info, next Next) Next {
		var verb string
		switch info.Kind {
		case KindRequest:
			verb = "send"
		case KindPublish:
			verb = "publish"
		case KindStream:
			verb = "stream"
		default:
			return next
		}
		provider := tp
		if provider == nil {
			provider = otel.GetTracerProvider()
		}
		tracer := provider.Tracer(TracerName)
		name := "mediator." + verb + " " + info.Name
		opts := []trace.SpanStartOption{
			trace.WithSpanKind(trace.SpanKindInternal),
			trace.WithAttributes(
				attribute.String("mediator.kind", info.Kind.String()),
				attribute.String("mediator.message_type", info.Name),
				attribute.Int("mediator.handlers", info.Handlers),
			),
		}
		return func(ctx context.Context, msg any) (out any, err error) {
			ctx, span := tracer.Start(ctx, name, opts...)
			defer func() {
				if r := recover(); r != nil {
					span.SetStatus(codes.Error, fmt.Sprint("panic: ", r))
					span.End()
					panic(r)
				}
				if err != nil {
					span.RecordError(err)
					span.SetStatus(codes.Error, err.Error())
				}
				span.End()
			}()
			return next(ctx, msg)
		}
	}
}

// Validator is implemented by messages that can check themselves. The
// [Validation] behaviour calls Validate before the handler runs.
type Validator interface {
	Validate() error
}

var validatorType = reflect.TypeFor[Validator]() //nolint:gochecknoglobals // an immutable reflect.Type, computed once

// Validation returns a behaviour that calls Validate on requests, stream
// requests and notifications that implement [Validator] (with a value or a
// pointer receiver) and, when it fails, returns a *[ValidationError]
// without running the handler. A notification is validated once per
// [Publish], before any handler runs. Message types without a Validate
// method are not wrapped at all.
func Validation() Behavior {
	return func(info Info, next Next) Next {
		if info.Kind == KindNotification || info.Type == nil {
			return next
		}
		switch {
		case info.Type.Implements(validatorType):
			return func(ctx context.Context, msg any) (any, error) {
				if v, ok := msg.(Validator); ok {
					if err := v.Validate(); err != nil {
						return nil, &ValidationError{Type: info.Name, Err: err}
					}
				}
				return next(ctx, msg)
			}
		case info.Type.Kind() != reflect.Pointer && reflect.PointerTo(info.Type).Implements(validatorType):
			// Validate has a pointer receiver but the message is a value:
			// call it on a copy.
			return func(ctx context.Context, msg any) (any, error) {
				p := reflect.New(info.Type)
				p.Elem().Set(reflect.ValueOf(msg))
				if err := p.Interface().(Validator).Validate(); err != nil {
					return nil, &ValidationError{Type: info.Name, Err: err}
				}
				return next(ctx, msg)
			}
		}
		return next
	}
}

// Recover returns a behaviour that turns a panic in a request, stream or
// notification handler (or in the behaviours inside this one) into a
// *[PanicError] carrying the panic value and the stack. Place it early
// (outermost) so it covers the other behaviours. With it, one panicking
// notification handler does not stop the others under [RunAll] or
// [Parallel]. A panic in the caller's own loop body over a [Stream] is not
// recovered: it goes on to the caller.
func Recover() Behavior {
	return func(info Info, next Next) Next {
		if info.Kind == KindPublish {
			return next
		}
		return func(ctx context.Context, msg any) (out any, err error) {
			defer func() {
				if r := recover(); r != nil {
					out, err = nil, &PanicError{Kind: info.Kind, Type: info.Name, Value: r, Stack: debug.Stack()}
				}
			}()
			return next(ctx, msg)
		}
	}
}

// Timeout returns a behaviour that gives each request, stream and
// notification handler invocation a context that expires after d. Handlers
// must honour their context: the behaviour does not abandon a running
// handler. An error returned after the deadline passed is wrapped to say so
// (errors.Is(err, context.DeadlineExceeded) stays true when the handler
// returned ctx.Err()). d <= 0 disables the behaviour.
func Timeout(d time.Duration) Behavior {
	return func(info Info, next Next) Next {
		if info.Kind == KindPublish || d <= 0 {
			return next
		}
		return func(ctx context.Context, msg any) (any, error) {
			tctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			out, err := next(tctx, msg)
			if err != nil && ctx.Err() == nil && errors.Is(tctx.Err(), context.DeadlineExceeded) {
				err = fmt.Errorf("mediator: %s %s exceeded its %s timeout: %w", info.Kind, info.Name, d, err)
			}
			return out, err
		}
	}
}
