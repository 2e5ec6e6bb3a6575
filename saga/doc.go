// Package saga runs long-running workflows (sagas, process managers) on a
// Hexeract App: typed definitions, state persisted between messages with
// optimistic concurrency, timeouts through the durable scheduler,
// compensations run in reverse order, and outgoing messages committed
// atomically with the state through the transactional outbox.
//
// A saga has a state struct, the events that start an instance, the events
// it handles, and for each event a function that yields the instance key
// (the correlation):
//
//	type Order struct {
//		ID       string
//		Reserved bool
//	}
//
//	def := saga.Define[Order]("orders")
//	saga.StartedBy(def, func(e OrderPlaced) string { return e.OrderID },
//		func(c *saga.Context[Order], s *Order, e OrderPlaced) error {
//			s.ID = e.OrderID
//			c.Send(ReserveStock{OrderID: e.OrderID})
//			c.Timeout(15*time.Minute, PaymentDue{OrderID: e.OrderID})
//			return nil
//		})
//	saga.Handles(def, func(e StockReserved) string { return e.OrderID },
//		func(c *saga.Context[Order], s *Order, e StockReserved) error {
//			s.Reserved = true
//			c.Compensate(ReleaseStock{OrderID: s.ID})
//			c.Send(ChargePayment{OrderID: s.ID})
//			return nil
//		})
//	saga.OnTimeout(def, func(c *saga.Context[Order], s *Order, t PaymentDue) error {
//		c.Fail(errors.New("payment not received in time"))
//		return nil
//	})
//	err := saga.Register(app, def, store, saga.WithOutbox(ob), saga.WithScheduler(sched))
//
// The type parameters are inferred from the functions, so each handler gets
// its event as a typed value; dispatch goes through typed closures built at
// registration, with no reflection per message.
//
// # Transitions
//
// For each message the runtime loads the instance (or creates it for a
// start event), decodes the state, runs the handler, and then saves the
// state with its version incremented and carries out what the handler asked
// through its [Context] (sends, timeouts, compensations, completion) in the
// same transaction. The save is conditional on the version read: when
// another consumer saved the instance first, the transition is rolled back
// and run again on the new state ([WithConflictRetries]), and once those
// retries are spent the message is returned to the transport as a
// retryable error. Two start events racing to create one instance end the
// same way: the insert of the loser conflicts and it runs again as an update.
//
// A handler returning an error rolls everything back and the message is
// retried by the App's middleware; [Context.Fail] is the business failure
// that starts the compensations.
//
// # Stores
//
// [NewSQLStore] works on any storage driver of package store (PostgreSQL,
// MySQL/MariaDB, SQLite): it keeps one row per instance (state as JSON,
// version, status, bookkeeping) and the last [MaxHistory] transitions,
// and needs the outbox ([WithOutbox]) and, for timeouts, the scheduler
// ([WithScheduler]) on the same database: the row, the outgoing messages
// and the timeouts commit together in one transaction of the driver.
// Handlers reach that transaction with [TxOf] to write rows of their own.
// [NewMemoryStore] is for tests: same concurrency and history rules,
// messages published after the commit, timeouts on timers.
//
// # Tracing
//
// Each transition runs in a span "saga <name> <message type>", a child of
// the handler's span; its sends, timeouts and compensations are created
// under it, so they keep the trace of the step that caused them
// ([WithTracerProvider]).
package saga
