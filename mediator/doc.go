// Package mediator dispatches commands, queries, notifications and streams
// in-process to typed handlers, through pipeline behaviours.
//
// It is independent of the message bus: it imports neither Watermill nor any
// other Hexeract package, so it can be adopted on its own.
//
// # Handlers
//
// A request type has exactly one handler, registered with [Register] or
// [RegisterFunc] and called with [Send]. Commands that return nothing use
// [RegisterCommand] and [Execute]. A notification type has any number of
// handlers, registered with [Subscribe] and called with [Publish] or
// [PublishWith]. A stream type has one handler, registered with
// [RegisterStream], and [Stream] returns its results as an iter.Seq2.
//
// # Behaviours
//
// A [Behavior] wraps every handler invocation (cross-cutting concerns such as
// logging, tracing, validation, panic recovery and timeouts); a
// [RequestBehavior] or [NotificationBehavior] wraps the handlers of one
// message type only. Behaviours wrap notification handlers as well as
// requests. They run in this order, outermost first:
//
//  1. behaviours given to [WithBehaviors] and [Mediator.Use], in the order
//     they were added;
//  2. typed behaviours added with [UseFor] or [UseForNotification], in the
//     order they were added;
//  3. the handler.
//
// For [Publish], each [Behavior] is first built once around the whole
// fan-out (Info.Kind == [KindPublish]) and then once around every
// subscribed handler (Info.Kind == [KindNotification]); a behaviour returns
// next unchanged for the kinds it does not care about. [Around] builds a
// behaviour from a function and skips [KindPublish], so a simple behaviour
// sees each handler invocation exactly once.
//
// # Performance
//
// Behaviour chains are built once, when the mediator freezes its registry at
// the first dispatch after a registration, never per call. Dispatch is
// lock-free: it loads an immutable table through an atomic pointer and finds
// the entry with a map keyed by a per-type token, without reflection.
// Registration is safe at any time, also concurrently with dispatch; each
// registration makes the next dispatch rebuild the table once.
package mediator
