package mediator_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hexeract/hexeract/mediator"
)

// subscribeAll subscribes handlers named by errs: a nil entry succeeds, a
// non-nil one fails with that error. It returns the record of calls.
func subscribeAll(t *testing.T, m *mediator.Mediator, errs ...error) *recorder {
	r := &recorder{}
	for i, e := range errs {
		name := string(rune('a' + i))
		must(t, mediator.SubscribeFunc(m, func(context.Context, UserCreated) error {
			r.add(name)
			return e
		}))
	}
	return r
}

func TestPublishStopOnFirstError(t *testing.T) {
	m := newMediator(t)
	errB := errors.New("b failed")
	r := subscribeAll(t, m, nil, errB, nil)
	err := mediator.Publish(context.Background(), m, UserCreated{})
	if err != errB {
		t.Fatalf("err = %v; want b's error unchanged", err)
	}
	if got := r.take(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("ran %v; want [a b] (c skipped)", got)
	}
}

func TestPublishRunAll(t *testing.T) {
	m := newMediator(t, mediator.WithPublishStrategy(mediator.RunAll))
	errA, errC := errors.New("a failed"), errors.New("c failed")
	r := subscribeAll(t, m, errA, nil, errC)
	err := mediator.Publish(context.Background(), m, UserCreated{})
	if !errors.Is(err, errA) || !errors.Is(err, errC) || err.Error() != "a failed\nc failed" {
		t.Fatalf("err = %q; want a and c joined", err)
	}
	if got := r.take(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("ran %v", got)
	}
	// All succeed: nil.
	m2 := newMediator(t, mediator.WithPublishStrategy(mediator.RunAll))
	subscribeAll(t, m2, nil, nil)
	if err := mediator.Publish(context.Background(), m2, UserCreated{}); err != nil {
		t.Fatalf("err = %v", err)
	}
}

func TestPublishWithOverridesTheDefault(t *testing.T) {
	m := newMediator(t) // StopOnFirstError
	errA := errors.New("a failed")
	r := subscribeAll(t, m, errA, nil)
	if err := mediator.PublishWith(context.Background(), m, mediator.RunAll, UserCreated{}); !errors.Is(err, errA) {
		t.Fatalf("err = %v", err)
	}
	if got := r.take(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("RunAll ran %v", got)
	}
	if err := mediator.Publish(context.Background(), m, UserCreated{}); err != errA {
		t.Fatalf("err = %v", err)
	}
	if got := r.take(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("default ran %v", got)
	}
	if err := mediator.PublishWith(context.Background(), m, mediator.Strategy(7), UserCreated{}); err == nil ||
		!strings.Contains(err.Error(), "unknown publish strategy 7") {
		t.Fatalf("bad strategy: %v", err)
	}
}

func TestPublishParallelRunsHandlersConcurrently(t *testing.T) {
	m := newMediator(t, mediator.WithPublishStrategy(mediator.Parallel))
	const n = 4
	// Every handler waits until all n have started: this completes only
	// if they run at the same time.
	var started sync.WaitGroup
	started.Add(n)
	allStarted := make(chan struct{})
	go func() { started.Wait(); close(allStarted) }()
	errs := make([]error, n)
	for i := range n {
		if i%2 == 1 {
			errs[i] = errors.New("handler " + string(rune('0'+i)) + " failed")
		}
		must(t, mediator.SubscribeFunc(m, func(ctx context.Context, _ UserCreated) error {
			started.Done()
			select {
			case <-allStarted:
				return errs[i]
			case <-time.After(10 * time.Second):
				return errors.New("handlers did not run concurrently")
			}
		}))
	}
	err := mediator.Publish(context.Background(), m, UserCreated{})
	if err == nil || err.Error() != "handler 1 failed\nhandler 3 failed" {
		t.Fatalf("err = %q; want errors of handlers 1 and 3 joined in order", err)
	}
}

func TestPublishParallelReraisesPanicAfterAllHandlers(t *testing.T) {
	m := newMediator(t, mediator.WithPublishStrategy(mediator.Parallel))
	var done sync.WaitGroup
	done.Add(2)
	must(t, mediator.SubscribeFunc(m, func(context.Context, UserCreated) error {
		defer done.Done()
		panic("boom")
	}))
	finished := make(chan struct{})
	must(t, mediator.SubscribeFunc(m, func(context.Context, UserCreated) error {
		defer done.Done()
		time.Sleep(20 * time.Millisecond)
		close(finished)
		return nil
	}))
	func() {
		defer func() {
			r := recover()
			pe, ok := r.(*mediator.PanicError)
			if !ok || pe.Value != "boom" || pe.Kind != mediator.KindNotification || len(pe.Stack) == 0 {
				t.Fatalf("recovered %#v; want *PanicError{Value: boom}", r)
			}
			select {
			case <-finished:
			default:
				t.Fatal("panic re-raised before the other handler finished")
			}
		}()
		_ = mediator.Publish(context.Background(), m, UserCreated{})
		t.Fatal("Publish returned normally")
	}()

	// With Recover, the panic is an error and the other handler still ran.
	m2 := newMediator(t, mediator.WithPublishStrategy(mediator.Parallel), mediator.WithBehaviors(mediator.Recover()))
	ran := make(chan struct{}, 1)
	must(t, mediator.SubscribeFunc(m2, func(context.Context, UserCreated) error { panic("boom") }))
	must(t, mediator.SubscribeFunc(m2, func(context.Context, UserCreated) error { ran <- struct{}{}; return nil }))
	err := mediator.Publish(context.Background(), m2, UserCreated{})
	var pe *mediator.PanicError
	if !errors.As(err, &pe) || pe.Value != "boom" {
		t.Fatalf("err = %v; want a PanicError", err)
	}
	select {
	case <-ran:
	default:
		t.Fatal("second handler did not run")
	}
}

func TestPublishWithoutHandlersIsNotAnError(t *testing.T) {
	m := newMediator(t, mediator.WithBehaviors(mediator.Recover()))
	for _, s := range []mediator.Strategy{mediator.StopOnFirstError, mediator.RunAll, mediator.Parallel} {
		if err := mediator.PublishWith(context.Background(), m, s, UserCreated{}); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	// Only a typed behaviour, no handler: still nothing to do.
	must(t, mediator.UseForNotification(m, func(ctx context.Context, n UserCreated, next mediator.NotificationHandlerFunc[UserCreated]) error {
		return errors.New("must not run without handlers")
	}))
	if err := mediator.Publish(context.Background(), m, UserCreated{}); err != nil {
		t.Fatal(err)
	}
	// KindPublish behaviours do not run either.
	r := &recorder{}
	must(t, m.Use(tag(r, "x")))
	if err := mediator.Publish(context.Background(), m, UserCreated{}); err != nil {
		t.Fatal(err)
	}
	if got := r.take(); got != nil {
		t.Fatalf("behaviours ran for a Publish without handlers: %v", got)
	}
}

func TestPublishStrategiesWithBehaviors(t *testing.T) {
	for _, s := range []mediator.Strategy{mediator.StopOnFirstError, mediator.RunAll, mediator.Parallel} {
		t.Run(s.String(), func(t *testing.T) {
			r := &recorder{}
			m := newMediator(t, mediator.WithBehaviors(mediator.Recover(), tag(r, "x")))
			errA := errors.New("a failed")
			calls := subscribeAll(t, m, errA, nil)
			err := mediator.PublishWith(context.Background(), m, s, UserCreated{})
			if !errors.Is(err, errA) {
				t.Fatalf("err = %v", err)
			}
			want := 2
			if s == mediator.StopOnFirstError {
				want = 1
			}
			if got := calls.take(); len(got) != want {
				t.Fatalf("handlers ran %v", got)
			}
			if got := r.take(); got[0] != "x:publish>" || got[len(got)-1] != "<x:publish" || len(got) != 2+2*want {
				t.Fatalf("behaviour log %v", got)
			}
		})
	}
}

// TestPublishParallelSingleHandlerPanicIsPanicError checks that under
// Parallel a panic reaches the caller as a *PanicError also when the
// notification has one handler, with or without a behaviour around it.
func TestPublishParallelSingleHandlerPanicIsPanicError(t *testing.T) {
	for _, opts := range [][]mediator.Option{
		{mediator.WithPublishStrategy(mediator.Parallel)},
		{mediator.WithPublishStrategy(mediator.Parallel), mediator.WithBehaviors(mediator.Logging(slog.New(slog.DiscardHandler)))},
	} {
		m := newMediator(t, opts...)
		must(t, mediator.SubscribeFunc(m, func(context.Context, UserCreated) error { panic("boom") }))
		func() {
			defer func() {
				r := recover()
				if pe, ok := r.(*mediator.PanicError); !ok || pe.Value != "boom" || pe.Kind != mediator.KindNotification {
					t.Fatalf("%d options: recovered %#v; want *PanicError{Value: boom}", len(opts), r)
				}
			}()
			_ = mediator.Publish(context.Background(), m, UserCreated{})
			t.Fatal("Publish returned normally")
		}()
	}
}
