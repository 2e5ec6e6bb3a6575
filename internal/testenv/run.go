package testenv

import (
	"context"
	"errors"
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

// App is what [StartApp] runs: a hexeract.App (or anything with the same
// Run and Running methods). testenv does not import hexeract, so the tests
// of the packages hexeract itself imports can use it too.
type App interface {
	Run(ctx context.Context) error
	Running() <-chan struct{}
}

// StartApp runs app in the background, waits until its handlers are
// subscribed, and returns a function that cancels Run and waits for it to
// return (reporting an error from it). The function is also called when
// the test ends, and calling it twice is safe.
func StartApp(t testing.TB, app App) (stop func()) {
	t.Helper()
	stopErr := RunApp(t, app)
	var once sync.Once
	stop = func() {
		once.Do(func() {
			if err := stopErr(); err != nil {
				t.Errorf("App.Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// RunApp is [StartApp] for tests that check Run's error themselves: the
// returned function cancels Run and returns its error (the same error on
// every call). When the test ends it is called if it was not, and an error
// is then ignored. A test fails at once when Run returns before the App is
// running or when it is not running after 30s.
func RunApp(t testing.TB, app App) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	select {
	case <-app.Running():
	case err := <-done:
		cancel()
		t.Fatalf("App.Run returned before the App was running: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("the App was not running after 30s")
	}
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(45 * time.Second):
				runErr = errors.New("App.Run did not return within 45s of cancellation")
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}
