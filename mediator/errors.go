package mediator

import (
	"errors"
	"fmt"
)

var (
	// ErrNoHandler matches (with errors.Is) the error returned when a
	// request or stream type has no handler; the error is a
	// *[NoHandlerError].
	ErrNoHandler = errors.New("mediator: no handler registered")
	// ErrDuplicateHandler is returned when a second handler is registered
	// for a request or stream type.
	ErrDuplicateHandler = errors.New("mediator: handler already registered")
	// ErrNilHandler is returned when a nil handler is registered.
	ErrNilHandler = errors.New("mediator: nil handler")
)

// NoHandlerError is returned by [Send], [Execute] and [Stream] for a message
// type that has no handler. It matches [ErrNoHandler].
type NoHandlerError struct {
	// Kind is KindRequest or KindStream.
	Kind Kind
	// Type is the Go type name of the message.
	Type string
}

// Error names the message type.
func (e *NoHandlerError) Error() string {
	return fmt.Sprintf("mediator: no handler registered for %s %s", e.Kind, e.Type)
}

// Is reports whether target is [ErrNoHandler].
func (e *NoHandlerError) Is(target error) bool { return target == ErrNoHandler }

// ValidationError is returned, before the handler runs, for a message whose
// Validate method (see [Validator] and [Validation]) returned an error.
type ValidationError struct {
	// Type is the Go type name of the message.
	Type string
	// Err is the error returned by Validate.
	Err error
}

// Error names the message type and the validation failure.
func (e *ValidationError) Error() string {
	return fmt.Sprintf("mediator: invalid %s: %v", e.Type, e.Err)
}

// Unwrap returns the error returned by Validate.
func (e *ValidationError) Unwrap() error { return e.Err }

// PanicError is a panic in a handler (or in a behaviour inside the
// recovering one), turned into an error by [Recover], or re-raised on the
// caller's goroutine by the [Parallel] publish strategy.
type PanicError struct {
	// Kind is the kind of invocation that panicked.
	Kind Kind
	// Type is the Go type name of the message.
	Type string
	// Value is the value passed to panic.
	Value any
	// Stack is the stack of the panicking goroutine, as runtime/debug.Stack
	// formats it.
	Stack []byte
}

// Error names the message type and the panic value; the stack is in Stack.
func (e *PanicError) Error() string {
	return fmt.Sprintf("mediator: panic in %s handler for %s: %v", e.Kind, e.Type, e.Value)
}

// Unwrap returns the panic value if it is an error, so errors.Is and
// errors.As see through a panic(err).
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}
