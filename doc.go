// Package hexeract is the composition root of Hexeract, a messaging
// framework for Go built on Watermill.
//
// [New] builds an [App] that owns a Watermill router, a publisher and a
// subscriber (any Watermill transport; in-memory GoChannel when none is
// given), the message type registry and the codec. Typed handlers are added
// with [Handle] or [HandleFunc], Watermill middleware with [App.Use], typed
// messages are sent with [App.Publish], and [App.Run] runs the router and any
// attached workers (outbox relay, scheduler) until its context is cancelled.
//
// Each dimension of Hexeract also works on its own: see the packages
// router (message model and typed handlers), mediator (in-process
// dispatch), middleware, outbox, saga, scheduler, reqreply and adapters.
package hexeract
