package mediator_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hexeract/hexeract/mediator"
)

type GetUser struct{ ID int }

type User struct {
	ID   int
	Name string
}

type CreateUser struct{ Name string }

type UserCreated struct{ ID int }

type userRepo struct{ names map[int]string }

func (r *userRepo) Handle(_ context.Context, q GetUser) (User, error) {
	n, ok := r.names[q.ID]
	if !ok {
		return User{}, fmt.Errorf("user %d not found", q.ID)
	}
	return User{ID: q.ID, Name: n}, nil
}

func newMediator(t testing.TB, opts ...mediator.Option) *mediator.Mediator {
	t.Helper()
	m, err := mediator.New(opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestSendReturnsHandlerResponse(t *testing.T) {
	m := newMediator(t)
	must(t, mediator.Register[GetUser, User](m, &userRepo{names: map[int]string{7: "ada"}}))

	u, err := mediator.Send[GetUser, User](context.Background(), m, GetUser{ID: 7})
	if err != nil || u != (User{ID: 7, Name: "ada"}) {
		t.Fatalf("Send = %+v, %v; want {7 ada}, nil", u, err)
	}
	_, err = mediator.Send[GetUser, User](context.Background(), m, GetUser{ID: 8})
	if err == nil || err.Error() != "user 8 not found" {
		t.Fatalf("Send error = %v; want the handler's error unchanged", err)
	}
}

func TestRegisterFuncInfersTypes(t *testing.T) {
	m := newMediator(t)
	must(t, mediator.RegisterFunc(m, func(_ context.Context, q GetUser) (*User, error) {
		return &User{ID: q.ID}, nil
	}))
	u, err := mediator.Send[GetUser, *User](context.Background(), m, GetUser{ID: 3})
	if err != nil || u.ID != 3 {
		t.Fatalf("Send = %+v, %v", u, err)
	}
}

func TestExecuteCommand(t *testing.T) {
	m := newMediator(t)
	var got []string
	must(t, mediator.RegisterCommand(m, func(_ context.Context, c CreateUser) error {
		if c.Name == "" {
			return errors.New("empty name")
		}
		got = append(got, c.Name)
		return nil
	}))
	must(t, mediator.Execute(context.Background(), m, CreateUser{Name: "grace"}))
	if err := mediator.Execute(context.Background(), m, CreateUser{}); err == nil || err.Error() != "empty name" {
		t.Fatalf("Execute error = %v; want empty name", err)
	}
	if !slices.Equal(got, []string{"grace"}) {
		t.Fatalf("handled %v", got)
	}
}

func TestSendWithoutHandlerNamesTheType(t *testing.T) {
	m := newMediator(t)
	_, err := mediator.Send[GetUser, User](context.Background(), m, GetUser{})
	if !errors.Is(err, mediator.ErrNoHandler) {
		t.Fatalf("err = %v; want ErrNoHandler", err)
	}
	var nh *mediator.NoHandlerError
	if !errors.As(err, &nh) || nh.Type != "mediator_test.GetUser" || nh.Kind != mediator.KindRequest {
		t.Fatalf("err = %#v", err)
	}
	if want := "mediator: no handler registered for request mediator_test.GetUser"; err.Error() != want {
		t.Fatalf("err = %q; want %q", err, want)
	}
	if err := mediator.Execute(context.Background(), m, CreateUser{}); !errors.Is(err, mediator.ErrNoHandler) ||
		!strings.Contains(err.Error(), "mediator_test.CreateUser") {
		t.Fatalf("Execute err = %v", err)
	}
}

func TestSendWithWrongResponseType(t *testing.T) {
	m := newMediator(t)
	must(t, mediator.Register[GetUser, User](m, &userRepo{}))
	_, err := mediator.Send[GetUser, *User](context.Background(), m, GetUser{})
	if err == nil || errors.Is(err, mediator.ErrNoHandler) ||
		!strings.Contains(err.Error(), "returns mediator_test.User, not *mediator_test.User") {
		t.Fatalf("err = %v; want a response type mismatch naming both types", err)
	}
}

func TestRegistrationErrors(t *testing.T) {
	m := newMediator(t)
	must(t, mediator.Register[GetUser, User](m, &userRepo{}))

	err := mediator.RegisterFunc(m, func(context.Context, GetUser) (User, error) { return User{}, nil })
	if !errors.Is(err, mediator.ErrDuplicateHandler) || !strings.Contains(err.Error(), "mediator_test.GetUser") {
		t.Fatalf("duplicate: %v", err)
	}
	// A duplicate with another response type is still a duplicate.
	err = mediator.RegisterFunc(m, func(context.Context, GetUser) (string, error) { return "", nil })
	if !errors.Is(err, mediator.ErrDuplicateHandler) {
		t.Fatalf("duplicate with other response: %v", err)
	}

	var nilRepo *userRepo
	cases := map[string]error{
		"nil interface":         mediator.Register[CreateUser, User](m, nil),
		"typed nil pointer":     mediator.Register[GetUser, User](m, nilRepo),
		"nil func":              mediator.RegisterFunc[CreateUser, User](m, nil),
		"nil HandlerFunc":       mediator.Register[CreateUser, User](m, mediator.HandlerFunc[CreateUser, User](nil)),
		"nil command":           mediator.RegisterCommand[CreateUser](m, nil),
		"nil subscriber":        mediator.SubscribeFunc[UserCreated](m, nil),
		"nil subscriber iface":  mediator.Subscribe[UserCreated](m, nil),
		"nil stream":            mediator.RegisterStreamFunc[GetUser, User](m, nil),
		"nil stream iface":      mediator.RegisterStream[GetUser, User](m, nil),
		"nil typed behavior":    mediator.UseFor[GetUser, User](m, nil),
		"nil typed notif. beh.": mediator.UseForNotification[UserCreated](m, nil),
	}
	for name, err := range cases {
		if err == nil {
			t.Errorf("%s: no error", name)
		} else if name != "nil typed behavior" && name != "nil typed notif. beh." && !errors.Is(err, mediator.ErrNilHandler) {
			t.Errorf("%s: %v; want ErrNilHandler", name, err)
		}
	}
	if err := m.Use(nil); err == nil {
		t.Error("Use(nil): no error")
	}
	if _, err := mediator.New(mediator.WithBehaviors(mediator.Recover(), nil)); err == nil || !strings.Contains(err.Error(), "behavior 1 is nil") {
		t.Errorf("WithBehaviors(nil): %v", err)
	}
	if _, err := mediator.New(mediator.WithPublishStrategy(mediator.Strategy(9))); err == nil {
		t.Error("WithPublishStrategy(9): no error")
	}
	// The first registration still works after the failed ones.
	if u, err := mediator.Send[GetUser, User](context.Background(), m, GetUser{}); err == nil {
		t.Fatalf("Send = %v, nil; want the repo's not-found error", u)
	}
}

func TestUseForResponseTypeMustMatch(t *testing.T) {
	m := newMediator(t)
	must(t, mediator.Register[GetUser, User](m, &userRepo{}))
	err := mediator.UseFor(m, func(ctx context.Context, q GetUser, next mediator.HandlerFunc[GetUser, string]) (string, error) {
		return next(ctx, q)
	})
	if err == nil || !strings.Contains(err.Error(), "UseFor[mediator_test.GetUser, mediator_test.User]") {
		t.Fatalf("err = %v", err)
	}

	// Added before the handler: the handler's registration is refused.
	m2 := newMediator(t)
	must(t, mediator.UseFor(m2, func(ctx context.Context, q GetUser, next mediator.HandlerFunc[GetUser, string]) (string, error) {
		return next(ctx, q)
	}))
	if err := mediator.Register[GetUser, User](m2, &userRepo{}); err == nil {
		t.Fatal("Register with mismatched typed behavior: no error")
	}
}

// recorder collects the order in which behaviours and handlers run.
type recorder struct {
	mu  sync.Mutex
	log []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.log = append(r.log, s)
	r.mu.Unlock()
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.log
	r.log = nil
	return l
}

// tag returns a behaviour recording "name>" before and "<name" after every
// invocation, including KindPublish.
func tag(r *recorder, name string) mediator.Behavior {
	return func(info mediator.Info, next mediator.Next) mediator.Next {
		return func(ctx context.Context, msg any) (any, error) {
			r.add(fmt.Sprintf("%s:%s>", name, info.Kind))
			out, err := next(ctx, msg)
			r.add(fmt.Sprintf("<%s:%s", name, info.Kind))
			return out, err
		}
	}
}

func TestBehaviorOrderForRequests(t *testing.T) {
	r := &recorder{}
	m := newMediator(t, mediator.WithBehaviors(tag(r, "a"), tag(r, "b")))
	typed := func(name string) mediator.RequestBehavior[GetUser, User] {
		return func(ctx context.Context, q GetUser, next mediator.HandlerFunc[GetUser, User]) (User, error) {
			r.add(name + ">")
			u, err := next(ctx, q)
			r.add("<" + name)
			return u, err
		}
	}
	// A typed behaviour added before the handler, one after.
	must(t, mediator.UseFor(m, typed("t1")))
	must(t, mediator.RegisterFunc(m, func(_ context.Context, q GetUser) (User, error) {
		r.add("handler")
		return User{ID: q.ID}, nil
	}))
	must(t, mediator.UseFor(m, typed("t2")))
	// Use after registration still wraps the handler, inside a and b.
	must(t, m.Use(tag(r, "c")))

	u, err := mediator.Send[GetUser, User](context.Background(), m, GetUser{ID: 1})
	if err != nil || u.ID != 1 {
		t.Fatalf("Send = %v, %v", u, err)
	}
	want := []string{"a:request>", "b:request>", "c:request>", "t1>", "t2>", "handler", "<t2", "<t1", "<c:request", "<b:request", "<a:request"}
	if got := r.take(); !slices.Equal(got, want) {
		t.Fatalf("order\n got %v\nwant %v", got, want)
	}
}

func TestBehaviorOrderForNotifications(t *testing.T) {
	r := &recorder{}
	m := newMediator(t, mediator.WithBehaviors(tag(r, "a"), tag(r, "b")))
	must(t, mediator.UseForNotification(m, func(ctx context.Context, n UserCreated, next mediator.NotificationHandlerFunc[UserCreated]) error {
		r.add("t>")
		err := next(ctx, n)
		r.add("<t")
		return err
	}))
	for _, name := range []string{"h0", "h1"} {
		must(t, mediator.SubscribeFunc(m, func(context.Context, UserCreated) error {
			r.add(name)
			return nil
		}))
	}
	must(t, mediator.Publish(context.Background(), m, UserCreated{ID: 1}))
	want := []string{
		"a:publish>", "b:publish>",
		"a:notification>", "b:notification>", "t>", "h0", "<t", "<b:notification", "<a:notification",
		"a:notification>", "b:notification>", "t>", "h1", "<t", "<b:notification", "<a:notification",
		"<b:publish", "<a:publish",
	}
	if got := r.take(); !slices.Equal(got, want) {
		t.Fatalf("order\n got %v\nwant %v", got, want)
	}
}

func TestAroundSkipsPublishLevel(t *testing.T) {
	var infos []mediator.Info
	var mu sync.Mutex
	m := newMediator(t, mediator.WithBehaviors(mediator.Around(func(ctx context.Context, info mediator.Info, msg any, next mediator.Next) (any, error) {
		mu.Lock()
		infos = append(infos, info)
		mu.Unlock()
		return next(ctx, msg)
	})))
	for range 3 {
		must(t, mediator.SubscribeFunc(m, func(context.Context, UserCreated) error { return nil }))
	}
	must(t, mediator.Publish(context.Background(), m, UserCreated{}))
	if len(infos) != 3 {
		t.Fatalf("Around ran %d times for 3 handlers: %+v", len(infos), infos)
	}
	for i, info := range infos {
		if info.Kind != mediator.KindNotification || info.Handler != i || info.Handlers != 3 || info.Name != "mediator_test.UserCreated" {
			t.Errorf("info %d = %+v", i, info)
		}
	}
	if mediator.Around(nil) != nil {
		t.Error("Around(nil) != nil")
	}
}

func TestBehaviorCanShortCircuitAndReplaceResponse(t *testing.T) {
	m := newMediator(t, mediator.WithBehaviors(mediator.Around(func(ctx context.Context, info mediator.Info, msg any, next mediator.Next) (any, error) {
		if q, ok := msg.(GetUser); ok && q.ID == 0 {
			return User{Name: "cached"}, nil
		}
		return next(ctx, msg)
	})))
	calls := 0
	must(t, mediator.RegisterFunc(m, func(_ context.Context, q GetUser) (User, error) {
		calls++
		return User{ID: q.ID}, nil
	}))
	u, err := mediator.Send[GetUser, User](context.Background(), m, GetUser{})
	if err != nil || u.Name != "cached" || calls != 0 {
		t.Fatalf("short circuit: %v %v calls=%d", u, err, calls)
	}
	u, err = mediator.Send[GetUser, User](context.Background(), m, GetUser{ID: 2})
	if err != nil || u.ID != 2 || calls != 1 {
		t.Fatalf("pass through: %v %v calls=%d", u, err, calls)
	}
}

func TestMisbehavingBehaviorGetsAnError(t *testing.T) {
	wrongResp := mediator.Around(func(ctx context.Context, info mediator.Info, msg any, next mediator.Next) (any, error) {
		return "not a user", nil
	})
	m := newMediator(t, mediator.WithBehaviors(wrongResp))
	must(t, mediator.Register[GetUser, User](m, &userRepo{}))
	if _, err := mediator.Send[GetUser, User](context.Background(), m, GetUser{}); err == nil || !strings.Contains(err.Error(), "returned string as the response of mediator_test.GetUser") {
		t.Fatalf("wrong response: %v", err)
	}

	wrongMsg := mediator.Around(func(ctx context.Context, info mediator.Info, msg any, next mediator.Next) (any, error) {
		return next(ctx, 42)
	})
	m = newMediator(t, mediator.WithBehaviors(wrongMsg))
	must(t, mediator.Register[GetUser, User](m, &userRepo{}))
	must(t, mediator.SubscribeFunc(m, func(context.Context, UserCreated) error { return nil }))
	if _, err := mediator.Send[GetUser, User](context.Background(), m, GetUser{}); err == nil || !strings.Contains(err.Error(), "passed int") {
		t.Fatalf("wrong message: %v", err)
	}
	if err := mediator.Publish(context.Background(), m, UserCreated{}); err == nil || !strings.Contains(err.Error(), "passed int") {
		t.Fatalf("wrong notification: %v", err)
	}
}

func TestConcurrentSendAndRegister(t *testing.T) {
	m := newMediator(t, mediator.WithBehaviors(mediator.Recover()))
	must(t, mediator.RegisterFunc(m, func(_ context.Context, q GetUser) (User, error) {
		return User{ID: q.ID * 2}, nil
	}))
	var sum atomic.Int64
	var wg sync.WaitGroup
	const workers, per = 16, 2000
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				u, err := mediator.Send[GetUser, User](context.Background(), m, GetUser{ID: i})
				if err != nil || u.ID != 2*i {
					t.Errorf("worker %d: Send(%d) = %v, %v", w, i, u, err)
					return
				}
				sum.Add(1)
				if err := mediator.Publish(context.Background(), m, UserCreated{ID: i}); err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
			}
		})
	}
	// Registrations and behaviours added while others dispatch.
	wg.Go(func() {
		for range 50 {
			if err := mediator.SubscribeFunc(m, func(context.Context, UserCreated) error { return nil }); err != nil {
				t.Error(err)
			}
			if err := m.Use(mediator.Around(func(ctx context.Context, _ mediator.Info, msg any, next mediator.Next) (any, error) {
				return next(ctx, msg)
			})); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	if sum.Load() != workers*per {
		t.Fatalf("%d successful sends; want %d", sum.Load(), workers*per)
	}
}

func TestDispatchDoesNotAllocate(t *testing.T) {
	m := newMediator(t)
	must(t, mediator.Register[GetUser, User](m, &userRepo{names: map[int]string{1: "ada"}}))
	must(t, mediator.SubscribeFunc(m, func(context.Context, UserCreated) error { return nil }))
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := mediator.Send[GetUser, User](ctx, m, GetUser{ID: 1}); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Send allocates %.1f times per call", n)
	}
	if n := testing.AllocsPerRun(1000, func() {
		if err := mediator.Publish(ctx, m, UserCreated{ID: 1}); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Publish allocates %.1f times per call", n)
	}

	// Typed behaviours see static types: no boxing.
	must(t, mediator.UseFor(m, func(ctx context.Context, q GetUser, next mediator.HandlerFunc[GetUser, User]) (User, error) {
		return next(ctx, q)
	}))
	must(t, mediator.UseForNotification(m, func(ctx context.Context, n UserCreated, next mediator.NotificationHandlerFunc[UserCreated]) error {
		return next(ctx, n)
	}))
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := mediator.Send[GetUser, User](ctx, m, GetUser{ID: 1}); err != nil {
			t.Fatal(err)
		}
		if err := mediator.Publish(ctx, m, UserCreated{ID: 1}); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Send and Publish with typed behaviours allocate %.1f times per call", n)
	}

	// A behaviour that stays out (Validation of a type without Validate)
	// costs nothing.
	must(t, m.Use(mediator.Validation()))
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := mediator.Send[GetUser, User](ctx, m, GetUser{ID: 1}); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Send with an idle Validation behaviour allocates %.1f times per call", n)
	}

	// Cross-cutting behaviours with pointer messages: nothing to box.
	mp := newMediator(t, mediator.WithBehaviors(mediator.Around(func(ctx context.Context, _ mediator.Info, msg any, next mediator.Next) (any, error) {
		return next(ctx, msg)
	})))
	must(t, mediator.RegisterFunc(mp, func(_ context.Context, q *GetUser) (*User, error) { return &theUser, nil }))
	must(t, mediator.SubscribeFunc(mp, func(context.Context, *UserCreated) error { return nil }))
	q, ev := &GetUser{ID: 1}, &UserCreated{ID: 1}
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := mediator.Send[*GetUser, *User](ctx, mp, q); err != nil {
			t.Fatal(err)
		}
		if err := mediator.Publish(ctx, mp, ev); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Send and Publish of pointer messages through a behaviour allocate %.1f times per call", n)
	}
}

var theUser = User{ID: 1}

// Distinct types, including ones with the same underlying type, must not
// share a handler.
type (
	ID1 int
	ID2 int
)

type Box[T any] struct{ V T }

func TestTypesWithSameShapeAreDistinct(t *testing.T) {
	m := newMediator(t)
	must(t, mediator.RegisterFunc(m, func(context.Context, ID1) (string, error) { return "ID1", nil }))
	must(t, mediator.RegisterFunc(m, func(context.Context, ID2) (string, error) { return "ID2", nil }))
	must(t, mediator.RegisterFunc(m, func(context.Context, int) (string, error) { return "int", nil }))
	must(t, mediator.RegisterFunc(m, func(context.Context, Box[int]) (string, error) { return "Box[int]", nil }))
	must(t, mediator.RegisterFunc(m, func(context.Context, Box[ID1]) (string, error) { return "Box[ID1]", nil }))
	must(t, mediator.RegisterFunc(m, func(context.Context, *Box[int]) (string, error) { return "*Box[int]", nil }))
	ctx := context.Background()
	check := func(got string, err error, want string) {
		t.Helper()
		if err != nil || got != want {
			t.Errorf("got %q, %v; want %q", got, err, want)
		}
	}
	s, err := mediator.Send[ID1, string](ctx, m, 1)
	check(s, err, "ID1")
	s, err = mediator.Send[ID2, string](ctx, m, 1)
	check(s, err, "ID2")
	s, err = mediator.Send[int, string](ctx, m, 1)
	check(s, err, "int")
	s, err = mediator.Send[Box[int], string](ctx, m, Box[int]{})
	check(s, err, "Box[int]")
	s, err = mediator.Send[Box[ID1], string](ctx, m, Box[ID1]{})
	check(s, err, "Box[ID1]")
	s, err = mediator.Send[*Box[int], string](ctx, m, nil)
	check(s, err, "*Box[int]")
	if _, err := mediator.Send[Box[ID2], string](ctx, m, Box[ID2]{}); !errors.Is(err, mediator.ErrNoHandler) {
		t.Errorf("Box[ID2]: %v", err)
	}
}

func TestBehaviorsAreBuiltOnceNotPerCall(t *testing.T) {
	var mu sync.Mutex
	built := map[mediator.Kind]int{}
	counting := func(info mediator.Info, next mediator.Next) mediator.Next {
		mu.Lock()
		built[info.Kind]++
		mu.Unlock()
		return func(ctx context.Context, msg any) (any, error) { return next(ctx, msg) }
	}
	m := newMediator(t, mediator.WithBehaviors(counting))
	must(t, mediator.Register[GetUser, User](m, &userRepo{names: map[int]string{1: "ada"}}))
	must(t, mediator.SubscribeFunc(m, func(context.Context, UserCreated) error { return nil }))
	must(t, mediator.SubscribeFunc(m, func(context.Context, UserCreated) error { return nil }))
	ctx := context.Background()
	for range 100 {
		if _, err := mediator.Send[GetUser, User](ctx, m, GetUser{ID: 1}); err != nil {
			t.Fatal(err)
		}
		must(t, mediator.Publish(ctx, m, UserCreated{}))
		must(t, mediator.PublishWith(ctx, m, mediator.RunAll, UserCreated{}))
	}
	// One request chain, one chain per notification handler, one
	// publish-level chain per strategy.
	want := map[mediator.Kind]int{mediator.KindRequest: 1, mediator.KindNotification: 2, mediator.KindPublish: 3}
	if !maps.Equal(built, want) {
		t.Fatalf("behaviour built %v; want %v", built, want)
	}
	// A registration rebuilds the table once, at the next dispatch.
	must(t, mediator.RegisterCommand(m, func(context.Context, CreateUser) error { return nil }))
	for range 10 {
		must(t, mediator.Execute(ctx, m, CreateUser{}))
	}
	if built[mediator.KindRequest] != 3 || built[mediator.KindNotification] != 4 {
		t.Fatalf("after one registration: %v", built)
	}
}
