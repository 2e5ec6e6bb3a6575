package middleware

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// delivery is the per-delivery record the middleware share through the
// message context. It is created by the outermost Hexeract middleware that
// sees the message. The attempt number may be read from other goroutines
// (a handler's helpers), so it is atomic; the other fields are written and
// read by the middleware on the handler goroutine, one after the other.
type delivery struct {
	// The record is also the message context (the parent context plus this
	// record as a value): one allocation per message instead of two.
	context.Context

	attempt      atomic.Int32
	calls        atomic.Int32 // handler calls counted by CountCalls
	retries      int
	firstFailure time.Time
	lastFailure  time.Time
	lastErr      error
	deadLettered bool
	deadTopic    string
	undecodable  bool // the transport could not unmarshal the message
}

type deliveryKey struct{}

// Value returns the record for deliveryKey and asks the parent otherwise.
func (d *delivery) Value(key any) any {
	if _, ok := key.(deliveryKey); ok {
		return d
	}
	return d.Context.Value(key)
}

// deliveryOf returns the delivery record of msg, creating it and making it
// the message context when msg has none yet.
func deliveryOf(msg *message.Message) *delivery {
	ctx := msg.Context()
	if d, ok := ctx.Value(deliveryKey{}).(*delivery); ok {
		return d
	}
	d := &delivery{Context: ctx}
	msg.SetContext(d)
	return d
}

func deliveryFrom(ctx context.Context) *delivery {
	d, _ := ctx.Value(deliveryKey{}).(*delivery)
	return d
}

// recordFailure notes a failed attempt.
func (d *delivery) recordFailure(err error, at time.Time) {
	if d.firstFailure.IsZero() {
		d.firstFailure = at
	}
	d.lastFailure = at
	if err != nil { // nil: the handler panicked; a middleware outside names the panic
		d.lastErr = err
	}
}

// attempts is the number of handler calls made so far (at least 1): the
// calls CountCalls counted when it is in the chain, else Retry's attempts.
func (d *delivery) attempts() int {
	n := int(d.attempt.Load())
	if c := int(d.calls.Load()); c > n {
		n = c
	}
	if n > 0 {
		return n
	}
	return 1
}

// Attempt returns the number of the current handling attempt of the message
// being handled: 1 for the first call, 2 for the first retry, and so on. It
// returns 0 when ctx does not come from a handler wrapped in [Retry].
//
// The count covers the retries of this delivery in this process; a message
// that the transport redelivers starts again at 1.
func Attempt(ctx context.Context) int {
	if d := deliveryFrom(ctx); d != nil {
		return int(d.attempt.Load())
	}
	return 0
}

// CountCalls is middleware that counts the handler calls of each delivery
// and records the time of each failed one, for [DeadLetter]: with it placed
// innermost (closest to the handler), the dead letter's
// hexeract_fault_attempts is the number of handler calls made and
// hexeract_fault_first_failure / _last_failure the times of the first and
// last failed call, whatever retried them: Hexeract's [Retry], Watermill's
// Retry middleware (also with ResetContextOnRetry), or both nested.
//
// A hexeract App wraps every handler in it, inside all the router's
// middleware; on a plain Watermill router add it last:
//
//	r.AddMiddleware(deadLetter, wmRetry.Middleware, middleware.CountCalls)
//
// It counts only under a Hexeract middleware placed outside it that keeps
// the delivery record (Tracing, Metrics, DeadLetter or Retry; Correlation does not);
// elsewhere it just calls the handler.
func CountCalls(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) (out []*message.Message, err error) {
		d := deliveryFrom(msg.Context())
		if d == nil {
			return h(msg)
		}
		d.calls.Add(1)
		failed := true
		defer func() {
			if failed {
				d.recordFailure(err, time.Now())
			}
		}()
		out, err = h(msg)
		failed = err != nil
		return out, err
	}
}
