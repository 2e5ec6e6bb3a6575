package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
)

// TestRetryCountsAttemptsAndWaitsWithBackoff: a handler that fails three
// times succeeds on the fourth attempt; it sees attempts 1..4 through
// middleware.Attempt and the waits grow exponentially (no jitter here, so
// each wait is at least the interval).
func TestRetryCountsAttemptsAndWaitsWithBackoff(t *testing.T) {
	retry := must(middleware.Retry(middleware.RetryPolicy{
		MaxAttempts: 5, InitialInterval: 20 * time.Millisecond, Multiplier: 2, NoJitter: true,
	}))
	var (
		mu       sync.Mutex
		attempts []int
		at       []time.Time
	)
	h := middleware.Chain(func(msg *message.Message) ([]*message.Message, error) {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, middleware.Attempt(msg.Context()))
		at = append(at, time.Now())
		if len(attempts) < 4 {
			return nil, errors.New("database busy")
		}
		return nil, nil
	}, retry)
	if _, err := h(message.NewMessage("m1", nil)); err != nil {
		t.Fatalf("handler failed after retries: %v", err)
	}
	if fmt.Sprint(attempts) != "[1 2 3 4]" {
		t.Fatalf("attempts seen by the handler = %v, want [1 2 3 4]", attempts)
	}
	for i, want := range []time.Duration{20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond} {
		got := at[i+1].Sub(at[i])
		if got < want || got > want+500*time.Millisecond {
			t.Errorf("wait before attempt %d = %v, want %v (+ scheduling slack)", i+2, got, want)
		}
	}
}

func TestRetryGivesUpAfterMaxAttempts(t *testing.T) {
	retry := must(middleware.Retry(middleware.RetryPolicy{MaxAttempts: 3, InitialInterval: time.Millisecond}))
	var calls atomic.Int32
	boom := errors.New("still down")
	h := middleware.Chain(func(msg *message.Message) ([]*message.Message, error) {
		calls.Add(1)
		return nil, boom
	}, retry)
	if _, err := h(message.NewMessage("m1", nil)); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the handler's error", err)
	}
	if calls.Load() != 3 {
		t.Fatalf("handler called %d times, want 3", calls.Load())
	}
}

// TestPermanentErrorsAreNotRetried covers the three ways an error is
// permanent: router.Permanent, a decode error, the policy's classifier.
func TestPermanentErrorsAreNotRetried(t *testing.T) {
	errQuota := errors.New("quota exceeded")
	cases := map[string]error{
		"router.Permanent": fmt.Errorf("charge card: %w", router.Permanent(errors.New("card declined"))),
		"decode error":     &router.DecodeError{MessageID: "m1", Want: "users.registered", Err: router.ErrMissingType},
		"classifier":       fmt.Errorf("call api: %w", errQuota),
	}
	for name, failure := range cases {
		t.Run(name, func(t *testing.T) {
			retry := must(middleware.Retry(middleware.RetryPolicy{
				MaxAttempts: 5, InitialInterval: time.Millisecond,
				IsPermanent: func(err error) bool { return errors.Is(err, errQuota) },
			}))
			var calls atomic.Int32
			h := middleware.Chain(func(*message.Message) ([]*message.Message, error) {
				calls.Add(1)
				return nil, failure
			}, retry)
			if _, err := h(message.NewMessage("m1", nil)); err != failure {
				t.Fatalf("err = %v, want %v", err, failure)
			}
			if calls.Load() != 1 {
				t.Fatalf("permanent error retried: %d calls", calls.Load())
			}
		})
	}
}

// TestRetryStopsWaitingWhenContextIsCancelled: a 10 s backoff is cut short
// by cancelling the message context.
func TestRetryStopsWaitingWhenContextIsCancelled(t *testing.T) {
	retry := must(middleware.Retry(middleware.RetryPolicy{MaxAttempts: 5, InitialInterval: 10 * time.Second, MaxInterval: 10 * time.Second}))
	boom := errors.New("down")
	h := middleware.Chain(func(*message.Message) ([]*message.Message, error) { return nil, boom }, retry)
	ctx, cancel := context.WithCancel(context.Background())
	msg := message.NewMessage("m1", nil)
	msg.SetContext(ctx)
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err := h(msg)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Retry waited %v after cancellation", took)
	}
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("err = %v, want the handler error and the cancellation", err)
	}
}

func TestRetryMaxElapsedTime(t *testing.T) {
	retry := must(middleware.Retry(middleware.RetryPolicy{
		MaxAttempts: 100, InitialInterval: 30 * time.Millisecond, Multiplier: 1, NoJitter: true,
		MaxElapsedTime: 110 * time.Millisecond,
	}))
	var calls atomic.Int32
	h := middleware.Chain(func(*message.Message) ([]*message.Message, error) {
		calls.Add(1)
		return nil, errors.New("down")
	}, retry)
	_, _ = h(message.NewMessage("m1", nil))
	// Attempts start at 0, 30, 60, 90 ms; the next one (120 ms) would be past
	// 110 ms. A loaded machine may push attempt 4 past the limit: 3 is fine,
	// what matters is that retrying stopped long before MaxAttempts.
	if n := calls.Load(); n < 3 || n > 4 {
		t.Fatalf("handler called %d times within MaxElapsedTime, want 4 (3 on a slow machine)", n)
	}
}

// TestRetryGivesEachAttemptAFreshTimeout: Watermill's Timeout inside Retry
// gets a new deadline per attempt (Watermill's own Retry reuses the
// cancelled context unless ResetContextOnRetry is set).
func TestRetryGivesEachAttemptAFreshTimeout(t *testing.T) {
	retry := must(middleware.Retry(middleware.RetryPolicy{MaxAttempts: 3, InitialInterval: time.Millisecond}))
	var calls atomic.Int32
	h := middleware.Chain(func(msg *message.Message) ([]*message.Message, error) {
		n := calls.Add(1)
		if err := msg.Context().Err(); err != nil {
			return nil, fmt.Errorf("attempt %d started with a dead context: %w", n, err)
		}
		if n == 1 {
			<-msg.Context().Done() // first attempt times out
			return nil, msg.Context().Err()
		}
		return nil, nil
	}, retry, wmTimeout(200*time.Millisecond))
	if _, err := h(message.NewMessage("m1", nil)); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 {
		t.Fatalf("calls = %d, want 2", calls.Load())
	}
}

func TestRetryPolicyErrors(t *testing.T) {
	for _, p := range []middleware.RetryPolicy{
		{MaxAttempts: -1},
		{Multiplier: 0.5},
		{Jitter: 1.5},
		{InitialInterval: time.Second, MaxInterval: time.Millisecond},
		{InitialInterval: -time.Second},
	} {
		if _, err := middleware.Retry(p); err == nil {
			t.Errorf("Retry(%+v) accepted an invalid policy", p)
		}
	}
}

// TestRetryMaxElapsedTimeCountsTheFirstAttempt: with slow attempts, no
// attempt starts later than MaxElapsedTime after the first one started.
// Retry used to measure the elapsed time from the end of the first attempt,
// so each limit was stretched by the first attempt's duration (here a third
// attempt started 1.2 s after the first, past a 1 s limit).
func TestRetryMaxElapsedTimeCountsTheFirstAttempt(t *testing.T) {
	const (
		attemptTakes = 600 * time.Millisecond
		maxElapsed   = time.Second
		slack        = 150 * time.Millisecond // scheduling after the last wait
	)
	retry := must(middleware.Retry(middleware.RetryPolicy{
		MaxAttempts: 10, InitialInterval: 10 * time.Millisecond, Multiplier: 1, NoJitter: true,
		MaxElapsedTime: maxElapsed,
	}))
	var starts []time.Time
	h := middleware.Chain(func(*message.Message) ([]*message.Message, error) {
		starts = append(starts, time.Now())
		time.Sleep(attemptTakes) // the work of a slow attempt
		return nil, errors.New("down")
	}, retry)
	_, _ = h(message.NewMessage("m1", nil))
	for i, s := range starts[1:] {
		if late := s.Sub(starts[0]); late > maxElapsed+slack {
			t.Fatalf("attempt %d of %d started %v after the first, past MaxElapsedTime %v", i+2, len(starts), late, maxElapsed)
		}
	}
}
