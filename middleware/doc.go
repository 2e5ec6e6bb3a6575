// Package middleware holds Hexeract's Watermill handler middleware: retry
// with exponential backoff and jitter ([Retry]), dead letters with fault
// details ([DeadLetter]), OpenTelemetry tracing ([Tracing] and
// [TracingPublisher]) and metrics ([Metrics]), and correlation/causation
// ([Correlation] and [CorrelationPublisher]).
//
// Every middleware is a plain [message.HandlerMiddleware], so it works on any
// Watermill router, and Watermill's own middleware (Recoverer, Timeout,
// Throttle, ...) mixes freely with it. [Default] returns the chain that
// hexeract.New installs:
//
//	Correlation → Tracing → Metrics → DeadLetter → Retry → Timeout → Recoverer → handler
//
// The middleware added first runs outermost. Tracing and metrics wrap the
// whole delivery (all attempts and the dead-letter publish); dead letter sits
// outside retry so only the final failure (or a permanent one) is moved
// aside; timeout is per attempt; the recoverer is innermost so a panic
// becomes an ordinary error that retry and dead letter see. See
// docs/middleware.md for the full reasoning.
//
// The middleware share one small per-delivery record kept in the message
// context: [Retry] writes the attempt number (read it in a handler with
// [Attempt]) and the failure times, [DeadLetter] copies them into the dead
// letter, [Metrics] and [Tracing] read the outcome.
package middleware
