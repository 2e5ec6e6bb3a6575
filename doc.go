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
// # The App owns what is attached to it
//
// Everything attached to an App lives and dies with it; no package keeps
// per-App state in a package-level registry. A background loop is a
// [Worker] ([WithWorker]); anything else with a lifecycle or per-App state
// is a [Component] ([App.Attach], [AttachOnce], [Attached]): the
// request/reply client and the saga runtimes are Components, and a
// third-party package attaches its own the same way. [App.Run] starts the
// Components, then the workers and the router; [App.Close] stops the router
// from taking messages, lets the handlers in flight finish, stops the
// workers, closes the Components in reverse order and finally the transport
// the App created. docs/getting-started.md ("Lifecycle") has the details.
//
// Each dimension of Hexeract also works on its own: see the packages
// router (message model and typed handlers), mediator (in-process
// dispatch), middleware, outbox, saga, scheduler, reqreply and adapters.
package hexeract
