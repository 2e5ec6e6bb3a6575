package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/hexeract/hexeract/router"
)

// Defaults of [RetryPolicy] fields left at their zero value.
const (
	DefaultMaxAttempts     = 5
	DefaultInitialInterval = 100 * time.Millisecond
	DefaultMaxInterval     = 10 * time.Second
	DefaultMultiplier      = 2.0
	DefaultJitter          = 0.2
)

// RetryPolicy configures [Retry]. The zero value is the default policy: 5
// attempts, 100 ms first interval doubling up to 10 s, ±20 % jitter, no limit
// on the elapsed time.
type RetryPolicy struct {
	// MaxAttempts is the number of handler calls, the first one included;
	// 0 means DefaultMaxAttempts, 1 means no retry.
	MaxAttempts int
	// InitialInterval is the wait before the first retry; 0 means
	// DefaultInitialInterval.
	InitialInterval time.Duration
	// MaxInterval caps each wait; 0 means DefaultMaxInterval.
	MaxInterval time.Duration
	// Multiplier scales the wait after each retry; 0 means
	// DefaultMultiplier. It must be at least 1.
	Multiplier float64
	// Jitter is the randomization factor in (0, 1]: each wait is drawn
	// uniformly from [w·(1−Jitter), w·(1+Jitter)] (and capped at MaxInterval),
	// so replicas that failed together do not retry together. 0 means
	// DefaultJitter; set NoJitter for fixed waits.
	Jitter float64
	// NoJitter makes every wait exactly the exponential interval.
	NoJitter bool
	// MaxElapsedTime stops retrying when the next attempt would start later
	// than this after the first one; 0 means no limit (MaxAttempts still
	// applies).
	MaxElapsedTime time.Duration
	// IsPermanent classifies more errors as permanent (not retried), on top
	// of the built-in rule: errors marked with router.Permanent (also
	// hexeract.Permanent) and decode errors are never retried.
	IsPermanent func(err error) bool
	// OnRetry, when set, is called before each wait with the number of the
	// attempt that failed, its error and the wait.
	OnRetry func(msg *message.Message, attempt int, err error, wait time.Duration)
	// Logger, when set, logs each retry at Warn level.
	Logger *slog.Logger
}

// Validate reports a policy [Retry] would refuse (negative attempts or
// intervals, MaxInterval below InitialInterval, a Multiplier below 1, a
// Jitter outside (0, 1]), after filling the zero fields with the defaults.
// The zero value is valid.
func (p RetryPolicy) Validate() error {
	_, err := p.withDefaults()
	return err
}

// withDefaults returns p with zero fields set to their defaults, or an
// error naming the field to change.
func (p RetryPolicy) withDefaults() (RetryPolicy, error) {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.InitialInterval == 0 {
		p.InitialInterval = DefaultInitialInterval
	}
	if p.MaxInterval == 0 {
		p.MaxInterval = DefaultMaxInterval
	}
	if p.Multiplier == 0 {
		p.Multiplier = DefaultMultiplier
	}
	if p.Jitter == 0 && !p.NoJitter {
		p.Jitter = DefaultJitter
	}
	if p.NoJitter {
		p.Jitter = 0
	}
	switch {
	case p.MaxAttempts < 0:
		return p, fmt.Errorf("hexeract: RetryPolicy.MaxAttempts is %d; use 1 or more (1 disables retries)", p.MaxAttempts)
	case p.InitialInterval < 0 || p.MaxInterval < 0 || p.MaxElapsedTime < 0:
		return p, errors.New("hexeract: RetryPolicy intervals must not be negative")
	case p.MaxInterval < p.InitialInterval:
		return p, fmt.Errorf("hexeract: RetryPolicy.MaxInterval (%s) is below InitialInterval (%s)", p.MaxInterval, p.InitialInterval)
	case p.Multiplier < 1 || math.IsNaN(p.Multiplier) || math.IsInf(p.Multiplier, 0):
		return p, fmt.Errorf("hexeract: RetryPolicy.Multiplier is %v; use a finite value of 1 or more", p.Multiplier)
	case p.Jitter < 0 || p.Jitter > 1 || math.IsNaN(p.Jitter):
		return p, fmt.Errorf("hexeract: RetryPolicy.Jitter is %v; use a value in (0, 1] or set NoJitter", p.Jitter)
	}
	return p, nil
}

// interval is the un-jittered wait after failed attempt n (n ≥ 1).
func (p RetryPolicy) interval(n int) time.Duration {
	w := float64(p.InitialInterval) * math.Pow(p.Multiplier, float64(n-1))
	if w >= float64(p.MaxInterval) || math.IsInf(w, 0) || math.IsNaN(w) {
		return p.MaxInterval
	}
	return time.Duration(w)
}

// wait is the jittered wait after failed attempt n; r is uniform in [0, 1).
func (p RetryPolicy) wait(n int, r float64) time.Duration {
	w := p.interval(n)
	if p.Jitter > 0 {
		w = time.Duration(float64(w) * (1 + p.Jitter*(2*r-1)))
	}
	if w > p.MaxInterval {
		w = p.MaxInterval
	}
	if w < 0 {
		w = 0
	}
	return w
}

// afterFailure handles failed attempt n: it records the failure and
// returns the error to give up with, or waits and returns nil to retry. It
// is kept out of the middleware function so the handler's call path keeps a
// small stack frame.
//
//go:noinline
func (p RetryPolicy) afterFailure(ctx context.Context, msg *message.Message, d *delivery, attempt int, err error, start time.Time) error {
	now := time.Now()
	d.recordFailure(err, now)
	if attempt >= p.MaxAttempts || p.permanent(err) {
		return err
	}
	w := p.wait(attempt, rand.Float64())
	if p.MaxElapsedTime > 0 && now.Add(w).Sub(start) > p.MaxElapsedTime {
		return err
	}
	if ctx.Err() != nil {
		return err
	}
	d.retries++
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent("retry", trace.WithAttributes(
			attribute.Int("hexeract.retry.attempt", attempt),
			attribute.String("hexeract.retry.error", err.Error()),
			attribute.Int64("hexeract.retry.wait_ms", w.Milliseconds()),
		))
	}
	if p.Logger != nil {
		p.Logger.Warn("hexeract: handler failed, retrying",
			"handler", message.HandlerNameFromCtx(ctx), "message_uuid", msg.UUID,
			"attempt", attempt, "max_attempts", p.MaxAttempts, "wait", w, "error", err)
	}
	if p.OnRetry != nil {
		p.OnRetry(msg, attempt, err, w)
	}
	timer := time.NewTimer(w)
	select {
	case <-ctx.Done():
		timer.Stop()
		return fmt.Errorf("hexeract: retry stopped after attempt %d (%v): %w", attempt, context.Cause(ctx), err)
	case <-timer.C:
		return nil
	}
}

func (p RetryPolicy) permanent(err error) bool {
	return router.IsPermanent(err) || (p.IsPermanent != nil && p.IsPermanent(err))
}

// Retry returns middleware that calls the handler again when it fails, with
// exponential backoff and jitter, up to the policy's attempts and elapsed
// time. Permanent errors (router.Permanent, decode errors, the policy's
// classifier) are returned at once. The handler reads its attempt number with
// [Attempt]. Cancelling the message context (the router shutting down) stops
// the wait at once and returns the last error, so the message is nacked.
//
// Unlike Watermill's Retry, each attempt starts from the message context the
// middleware received, so a per-attempt Timeout placed inside it gives every
// attempt a fresh deadline; messages produced by failed attempts are
// dropped.
func Retry(policy RetryPolicy) (message.HandlerMiddleware, error) {
	p, err := policy.withDefaults()
	if err != nil {
		return nil, err
	}
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			d := deliveryOf(msg)
			ctx := msg.Context()
			var start time.Time // when the first attempt started; read only with MaxElapsedTime
			for attempt := 1; ; attempt++ {
				if attempt == 1 && p.MaxElapsedTime > 0 {
					start = time.Now()
				}
				d.attempt.Store(int32(attempt))
				msg.SetContext(ctx)
				out, err := h(msg)
				msg.SetContext(ctx)
				if err == nil {
					return out, nil
				}
				if err := p.afterFailure(ctx, msg, d, attempt, err, start); err != nil {
					return nil, err
				}
			}
		}
	}, nil
}
