package mediator_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/hexeract/hexeract/mediator"
)

type ListUsers struct{ Limit int }

// countTo registers a stream of User{ID: 1..req.Limit} that records how it
// ended in *ended.
func countTo(t *testing.T, m *mediator.Mediator, ended *string, failAt int) {
	must(t, mediator.RegisterStreamFunc(m, func(ctx context.Context, req ListUsers, yield func(User) bool) error {
		for i := 1; i <= req.Limit; i++ {
			if i == failAt {
				*ended = "failed"
				return errors.New("database gone")
			}
			if !yield(User{ID: i}) {
				*ended = "stopped:" + context.Cause(ctx).Error()
				return ctx.Err()
			}
		}
		*ended = "done"
		return nil
	}))
}

func collect(seq func(func(User, error) bool)) (ids []int, errs []error) {
	for u, err := range seq {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ids = append(ids, u.ID)
	}
	return ids, errs
}

func TestStreamYieldsAllItems(t *testing.T) {
	for _, withBehaviors := range []bool{false, true} {
		var opts []mediator.Option
		if withBehaviors {
			opts = append(opts, mediator.WithBehaviors(mediator.Recover(), mediator.Logging(nil), mediator.Tracing(nil)))
		}
		m := newMediator(t, opts...)
		var ended string
		countTo(t, m, &ended, 0)
		ids, errs := collect(mediator.Stream[ListUsers, User](context.Background(), m, ListUsers{Limit: 4}))
		if !slices.Equal(ids, []int{1, 2, 3, 4}) || errs != nil || ended != "done" {
			t.Fatalf("behaviours=%v: ids %v errs %v ended %q", withBehaviors, ids, errs, ended)
		}
	}
}

func TestStreamHandlerErrorIsTheLastPair(t *testing.T) {
	m := newMediator(t)
	var ended string
	countTo(t, m, &ended, 3)
	ids, errs := collect(mediator.Stream[ListUsers, User](context.Background(), m, ListUsers{Limit: 10}))
	if !slices.Equal(ids, []int{1, 2}) || len(errs) != 1 || errs[0].Error() != "database gone" {
		t.Fatalf("ids %v errs %v", ids, errs)
	}
}

func TestStreamEarlyBreakStopsTheHandler(t *testing.T) {
	for _, withBehaviors := range []bool{false, true} {
		var opts []mediator.Option
		if withBehaviors {
			opts = append(opts, mediator.WithBehaviors(mediator.Recover(), mediator.Timeout(1e9)))
		}
		m := newMediator(t, opts...)
		var ended string
		countTo(t, m, &ended, 0)
		var ids []int
		for u, err := range mediator.Stream[ListUsers, User](context.Background(), m, ListUsers{Limit: 1000}) {
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, u.ID)
			if len(ids) == 2 {
				break
			}
		}
		// The handler saw yield return false and its context cancelled,
		// and its ctx.Err() was not passed on to the loop that broke.
		if !slices.Equal(ids, []int{1, 2}) || ended != "stopped:context canceled" {
			t.Fatalf("behaviours=%v: ids %v ended %q", withBehaviors, ids, ended)
		}
	}
}

func TestStreamHandlerIgnoringStopDoesNotReachTheLoop(t *testing.T) {
	m := newMediator(t)
	extra := 0
	must(t, mediator.RegisterStreamFunc(m, func(ctx context.Context, _ ListUsers, yield func(int) bool) error {
		for i := range 5 {
			if !yield(i) {
				extra++
			}
		}
		return errors.New("ignored after break")
	}))
	n := 0
	for _, err := range mediator.Stream[ListUsers, int](context.Background(), m, ListUsers{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		break
	}
	if n != 1 || extra != 5 {
		t.Fatalf("loop ran %d times, handler's yield refused %d times", n, extra)
	}
}

func TestStreamLoopBodyPanicReachesTheCaller(t *testing.T) {
	m := newMediator(t, mediator.WithBehaviors(mediator.Recover()))
	var ended string
	countTo(t, m, &ended, 0)
	func() {
		defer func() {
			if r := recover(); r != "loop body" {
				t.Fatalf("recovered %#v; want the loop body's own panic value", r)
			}
		}()
		for range mediator.Stream[ListUsers, User](context.Background(), m, ListUsers{Limit: 5}) { //nolint:errcheck // the loop body panics before any error could be read
			panic("loop body")
		}
	}()
	if ended != "stopped:context canceled" {
		t.Fatalf("handler ended %q", ended)
	}
}

func TestStreamHandlerPanicWithRecover(t *testing.T) {
	m := newMediator(t, mediator.WithBehaviors(mediator.Recover()))
	must(t, mediator.RegisterStreamFunc(m, func(ctx context.Context, _ ListUsers, yield func(User) bool) error {
		yield(User{ID: 1})
		panic("handler bug")
	}))
	ids, errs := collect(mediator.Stream[ListUsers, User](context.Background(), m, ListUsers{}))
	var pe *mediator.PanicError
	if !slices.Equal(ids, []int{1}) || len(errs) != 1 || !errors.As(errs[0], &pe) || pe.Kind != mediator.KindStream {
		t.Fatalf("ids %v errs %v", ids, errs)
	}
}

func TestStreamErrors(t *testing.T) {
	m := newMediator(t)
	ids, errs := collect(mediator.Stream[ListUsers, User](context.Background(), m, ListUsers{}))
	if ids != nil || len(errs) != 1 || !errors.Is(errs[0], mediator.ErrNoHandler) ||
		errs[0].Error() != "mediator: no handler registered for stream mediator_test.ListUsers" {
		t.Fatalf("no handler: ids %v errs %v", ids, errs)
	}
	var ended string
	countTo(t, m, &ended, 0)
	for _, err := range mediator.Stream[ListUsers, string](context.Background(), m, ListUsers{}) {
		if err == nil || !strings.Contains(err.Error(), "yields mediator_test.User, not string") {
			t.Fatalf("wrong item type: %v", err)
		}
	}
	if err := mediator.RegisterStreamFunc(m, func(context.Context, ListUsers, func(User) bool) error { return nil }); !errors.Is(err, mediator.ErrDuplicateHandler) {
		t.Fatalf("duplicate: %v", err)
	}
	// A request handler for the same type is a separate registration.
	must(t, mediator.RegisterFunc(m, func(context.Context, ListUsers) (int, error) { return 1, nil }))
}

type userStream []User

func (s userStream) Stream(ctx context.Context, _ ListUsers, yield func(User) bool) error {
	for _, u := range s {
		if !yield(u) {
			return nil
		}
	}
	return nil
}

func TestRegisterStreamInterface(t *testing.T) {
	m := newMediator(t)
	must(t, mediator.RegisterStream[ListUsers, User](m, userStream{{ID: 9}, {ID: 8}}))
	ids, errs := collect(mediator.Stream[ListUsers, User](context.Background(), m, ListUsers{}))
	if !slices.Equal(ids, []int{9, 8}) || errs != nil {
		t.Fatalf("ids %v errs %v", ids, errs)
	}
}
