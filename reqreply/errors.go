package reqreply

import (
	"errors"
	"fmt"
)

// ErrTimeout is returned by [Request] when no reply arrived before the
// deadline (from the context, [Timeout] or the client's default timeout).
// The returned error also matches [context.DeadlineExceeded].
var ErrTimeout = errors.New("reqreply: no reply before the deadline")

// ErrNoResponder is returned by [Request] when the request was sent with
// [NoResponderTimeout] and no responder acknowledged it in that time: no
// process consumes the request topic, or none is keeping up.
var ErrNoResponder = errors.New("reqreply: no responder acknowledged the request")

// ErrClosed is returned by [Request] when the client was closed, or its reply
// subscription ended (for example because the transport was closed), before
// the reply arrived.
var ErrClosed = errors.New("reqreply: client closed")

// Codes of the errors the responder reports by itself. A handler chooses its
// own codes with [NewError] or an error that has an ErrorCode() string method.
const (
	CodeInternal         = "internal"          // the handler returned an error without a code
	CodeBadRequest       = "bad_request"       // the request could not be decoded; permanent
	CodeDeadlineExceeded = "deadline_exceeded" // the handler gave up because the request's deadline passed
)

// RemoteError is the error a responder's handler returned, as the caller sees
// it. It is also how a handler chooses the code the caller gets: return
// [NewError] (wrapped or not) from the handler.
//
// errors.Is matches two RemoteErrors with the same non-empty Code, so a
// sentinel declared once works on both sides:
//
//	var ErrOutOfStock = reqreply.NewError("out_of_stock", "item is out of stock")
//	// responder: return Resp{}, ErrOutOfStock
//	// caller:    errors.Is(err, ErrOutOfStock)
//
// A handler error marked with [hexeract.Permanent] (or any error whose
// Permanent() method reports true) arrives marked permanent: Permanent
// reports true and [hexeract.IsPermanent] recognises it, so caller-side retry
// logic can skip it.
type RemoteError struct {
	// Code is a short machine-readable reason, for example "out_of_stock".
	Code string
	// Message is the text of the handler's error.
	Message string
	// RequestType is the wire name of the request (set on the caller side).
	RequestType string
	// Responder is the ce_source of the reply (set on the caller side).
	Responder string

	permanent bool
}

// NewError returns a remote error with a code and a message, to return from
// a request handler or to compare with errors.Is.
func NewError(code, message string) *RemoteError {
	return &RemoteError{Code: code, Message: message}
}

// Error returns "reqreply: <request type>: remote error <code>: <message>"
// on the caller side. On the responder side (no request type yet) it returns
// the message alone (the code when there is no message), so a handler that
// wraps a sentinel, fmt.Errorf("sku %s: %w", sku, ErrOutOfStock), sends the
// message "sku A-1: item is out of stock".
func (e *RemoteError) Error() string {
	if e.RequestType != "" {
		return fmt.Sprintf("reqreply: %s: remote error %s: %s", e.RequestType, e.Code, e.Message)
	}
	if e.Message == "" {
		return e.Code
	}
	return e.Message
}

// ErrorCode returns Code.
func (e *RemoteError) ErrorCode() string { return e.Code }

// Permanent reports whether the responder marked the error permanent:
// repeating the same request would fail the same way.
func (e *RemoteError) Permanent() bool { return e.permanent }

// Is reports whether target is a *RemoteError with the same non-empty Code.
func (e *RemoteError) Is(target error) bool {
	t, ok := target.(*RemoteError)
	return ok && t.Code != "" && t.Code == e.Code
}
