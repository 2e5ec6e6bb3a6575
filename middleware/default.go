package middleware

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	wmmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
)

// DefaultTimeout is the per-attempt handler timeout of the default chain.
const DefaultTimeout = 30 * time.Second

// DefaultConfig configures the chain [Default] builds. The zero value is
// usable; without a Publisher the chain has no dead-letter step.
type DefaultConfig struct {
	// Publisher publishes dead letters. nil leaves DeadLetter out unless
	// DeadLetter.Store is set: final failures are then nacked and the
	// transport redelivers them.
	Publisher message.Publisher
	// Retry is the retry policy; the zero value is the default policy.
	Retry RetryPolicy
	// DeadLetter configures the dead-letter step.
	DeadLetter DeadLetterOptions
	// Timeout bounds each attempt (the handler's context is cancelled after
	// it); 0 means DefaultTimeout, a negative value disables it.
	Timeout time.Duration
	// Redelivery, when set, runs between DeadLetter and Retry: after the
	// immediate retries are exhausted it may take the message over (for
	// example scheduler.Redelivery, which schedules it again at increasing
	// delays and dead-letters it after the last one).
	Redelivery message.HandlerMiddleware
	// Tracing and Metrics configure the OpenTelemetry steps.
	Tracing TracingOptions
	Metrics MetricsOptions
	// Logger, when set, is used by Retry and DeadLetter unless their own
	// options set one.
	Logger *slog.Logger
}

// Validate reports a configuration [Default] would refuse: today an invalid
// Retry policy (see [RetryPolicy.Validate]). The zero value is valid.
func (c DefaultConfig) Validate() error {
	return c.Retry.Validate()
}

// Default returns Hexeract's default handler middleware chain, outermost
// first:
//
//  1. Correlation: the incoming message is in the context before anything
//     else runs, so every step and the handler publish correlated messages.
//  2. Tracing: one consumer span covers the whole delivery (every attempt,
//     the backoff waits, the dead-letter publish, which becomes a child
//     span), and the outcome is recorded on it.
//  3. Metrics: the duration covers the same whole delivery; it reads the
//     retry count and the dead-letter outcome when the inner steps return.
//  4. DeadLetter: sees only the final error (after Retry gave up) or a
//     permanent one, moves the message aside and acks it; if its publish
//     fails the message is nacked. It also recovers panics that escape.
//  5. Retry: repeats transient failures with backoff; each attempt starts
//     from the same context, so the next step gives each attempt its own
//     deadline.
//  6. Timeout (Watermill's): per attempt, so a slow attempt does not eat the
//     budget of the retries.
//  7. Recoverer (Watermill's): innermost, so a panic becomes an error with
//     its stack that Retry retries and DeadLetter records.
//
// Putting DeadLetter inside Retry would dead-letter on the first failure;
// putting Recoverer outermost would let panics skip both; putting Timeout
// outside Retry would let one slow attempt cancel all the others.
func Default(cfg DefaultConfig) ([]message.HandlerMiddleware, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Retry.Logger == nil {
		cfg.Retry.Logger = cfg.Logger
	}
	if cfg.DeadLetter.Logger == nil {
		cfg.DeadLetter.Logger = cfg.Logger
	}
	retry, err := Retry(cfg.Retry)
	if err != nil {
		return nil, err
	}
	metricsMW, err := Metrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	chain := []message.HandlerMiddleware{
		Correlation,
		Tracing(cfg.Tracing),
		metricsMW,
	}
	if cfg.Publisher != nil || cfg.DeadLetter.Store != nil {
		dl, err := DeadLetter(cfg.Publisher, cfg.DeadLetter)
		if err != nil {
			return nil, err
		}
		chain = append(chain, dl)
	}
	if cfg.Redelivery != nil {
		chain = append(chain, cfg.Redelivery)
	}
	chain = append(chain, retry)
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	if timeout > 0 {
		chain = append(chain, wmmiddleware.Timeout(timeout))
	}
	chain = append(chain, wmmiddleware.Recoverer)
	return chain, nil
}

// Chain wraps h in mw, the first middleware outermost, the way a Watermill
// router applies its middleware. It is useful to run a chain without a
// router (tests, benchmarks, custom consumers).
func Chain(h message.HandlerFunc, mw ...message.HandlerMiddleware) message.HandlerFunc {
	for i := len(mw) - 1; i >= 0; i-- {
		if mw[i] == nil {
			panic(fmt.Sprintf("hexeract: middleware.Chain: middleware %d is nil", i))
		}
		h = mw[i](h)
	}
	return h
}
