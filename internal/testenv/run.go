package testenv

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Run runs fn (a worker's Run method: an outbox relay, a scheduler, an
// App) in the background with a context that stop cancels. stop waits up
// to stopTimeout for fn to return and reports an error from it; it is
// also called when the test ends, and calling it twice is safe.
func Run(t testing.TB, name string, stopTimeout time.Duration, fn func(ctx context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: Run: %v", name, err)
				}
			case <-time.After(stopTimeout):
				t.Errorf("%s did not stop within %v of cancellation", name, stopTimeout)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// WaitFor polls cond every few milliseconds until it holds, and fails the
// test naming what it waited for when timeout passes first.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
