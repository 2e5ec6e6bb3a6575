package saga

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/store"
)

// Context is what a saga handler acts through. It is a [context.Context]
// (the message handler's, so [router.EnvelopeFrom] works and sent messages
// are correlated with the incoming one) plus the saga's actions.
//
// Every action is recorded and carried out only when the handler returns
// nil, in the same transaction that saves the state: with the SQL
// store the messages go to the outbox and the timeouts to the scheduler in
// that transaction, so a handler that returns an error, or a transition that
// loses an optimistic-concurrency race, sends nothing. A handler may run more
// than once for one message (redelivery, conflict retry); keep its effects
// inside the Context and the state.
type Context[S any] struct {
	context.Context
	def   *Definition[S]
	key   string
	inst  *Instance
	tx    Tx
	phase phase
	wire  string // wire name of the event, timeout or compensation step

	sends    []router.Message
	timeouts []timeoutOp // Timeout and CancelTimeout calls, in order
	comps    []router.Message
	complete bool
	stepDone bool
	failure  error
	err      error
}

type phase int

func (p phase) String() string {
	switch p {
	case phaseTimeout:
		return "timeout"
	case phaseCompensate:
		return "compensate"
	default:
		return "event"
	}
}

const (
	phaseEvent phase = iota
	phaseTimeout
	phaseCompensate
)

// timeoutOp is a Timeout (msg set) or a CancelTimeout (msg nil) call.
type timeoutOp struct {
	typ   string
	after time.Duration
	msg   router.Message
}

// Saga returns the saga name.
func (c *Context[S]) Saga() string { return c.def.name }

// Key returns the instance's correlation key.
func (c *Context[S]) Key() string { return c.key }

// Status returns the instance's status before this transition.
func (c *Context[S]) Status() Status { return c.inst.Status }

// IsNew reports whether this transition creates the instance.
func (c *Context[S]) IsNew() bool { return c.inst.Version == 0 }

// Executor returns the storage driver's transaction of the transition
// (the unit of work of an [SQLStore]); nil with the in-memory store. Use
// [TxOf] to get it as the driver's own transaction type. Do not commit or
// roll it back.
func (c *Context[S]) Executor() store.ExecutorTx { return c.tx.Executor() }

// TxOf returns the transition's transaction as drv's transaction type
// (pgx.Tx for store/postgres, *sql.Tx for store/mysql and store/sqlite), for
// handlers that write their own rows atomically with the state and the
// messages:
//
//	tx, ok := saga.TxOf(c, drv) // drv: the driver the SQLStore was built on
//	if !ok {
//		return errors.New("not on a SQL store")
//	}
//	_, err := tx.Exec(c, "UPDATE stock SET reserved = reserved + 1 WHERE sku = $1", sku)
//
// ok is false with the in-memory store, or when drv is not the driver of
// the store (another database type). The runtime commits or rolls back the
// transaction; a handler must not. Inside the inbox middleware's
// transaction the transition runs in a savepoint of it, which TxOf returns.
func TxOf[TTx, S any](c *Context[S], drv store.Driver[TTx]) (tx TTx, ok bool) {
	ex := c.Executor()
	if ex == nil || drv == nil {
		return tx, false
	}
	return drv.TxOf(ex)
}

func (c *Context[S]) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

// Send sends commands. It is [Context.Publish] under the name that reads
// right for commands: both go through the outbox to the topic of each
// message's type.
func (c *Context[S]) Send(msgs ...router.Message) { c.Publish(msgs...) }

// Publish publishes messages when the transition commits. Each carries the
// saga name and key in its metadata (saga_name, saga_key).
func (c *Context[S]) Publish(msgs ...router.Message) {
	for _, m := range msgs {
		if m == nil {
			c.fail(router.Permanent(errors.New("saga: Publish of a nil message")))
			return
		}
	}
	c.sends = append(c.sends, msgs...)
}

// Timeout schedules msg to come back to this instance after the given
// duration, handled by the [OnTimeout] handler for msg's type. A pending
// timeout of the same type is replaced (the old one is cancelled and, should
// it still arrive, ignored). Pending timeouts are cancelled when the
// instance completes or fails, and a timeout that arrives after that is
// ignored.
func (c *Context[S]) Timeout(after time.Duration, msg router.Message) {
	switch {
	case msg == nil:
		c.fail(router.Permanent(errors.New("saga: Timeout with a nil message")))
	case c.phase == phaseCompensate:
		c.fail(router.Permanent(fmt.Errorf("saga %s: Timeout is not allowed in a compensation", c.def.name)))
	case c.def.timeouts[msg.MessageType()] == nil:
		c.fail(router.Permanent(fmt.Errorf("saga %s: Timeout(%s) has no handler; declare it with saga.OnTimeout", c.def.name, msg.MessageType())))
	default:
		c.timeouts = append(c.timeouts, timeoutOp{typ: msg.MessageType(), after: after, msg: msg})
	}
}

// CancelTimeout cancels the pending timeout of msg's type, if any; msg may
// be the zero value of the type. Timeout and CancelTimeout calls take effect
// in the order they were made.
func (c *Context[S]) CancelTimeout(msg router.Message) {
	if msg == nil {
		return
	}
	c.timeouts = append(c.timeouts, timeoutOp{typ: msg.MessageType()})
}

// Compensate registers a compensating action: msg runs if the saga later
// fails ([Context.Fail]). Compensations run one at a time in reverse order of
// registration, each as a durable message: in-process through the
// [OnCompensate] handler for msg's type when there is one, otherwise sent on
// msg's topic for another service. A compensation that fails is retried,
// then dead-lettered with the saga name and key.
func (c *Context[S]) Compensate(msg router.Message) {
	switch {
	case msg == nil:
		c.fail(router.Permanent(errors.New("saga: Compensate with a nil message")))
	case c.phase == phaseCompensate:
		c.fail(router.Permanent(fmt.Errorf("saga %s: Compensate is not allowed in a compensation", c.def.name)))
	default:
		c.comps = append(c.comps, msg)
	}
}

// Complete marks the instance completed when the transition commits: its
// pending timeouts are cancelled and it is deleted, or kept as completed for
// the retention period ([WithRetention]). Later events for it are treated as
// events for an unknown instance.
func (c *Context[S]) Complete() { c.complete = true }

// Fail marks the saga failed: when the transition commits, its pending
// timeouts are cancelled and its compensations start, last registered
// first. With no compensation registered the instance finishes as failed
// at once. Fail wins over Complete. A handler that returns an error does not
// fail the saga: its message is retried.
func (c *Context[S]) Fail(reason error) {
	if c.phase == phaseCompensate {
		c.fail(router.Permanent(fmt.Errorf("saga %s: Fail is not allowed in a compensation; return an error to retry it", c.def.name)))
		return
	}
	if reason == nil {
		reason = errors.New("failed")
	}
	c.failure = reason
}
