package mediator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hexeract/hexeract/mediator"
)

func TestLoggingBehavior(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := newMediator(t, mediator.WithBehaviors(mediator.Logging(logger)))
	must(t, mediator.Register[GetUser, User](m, &userRepo{names: map[int]string{1: "ada"}}))
	must(t, mediator.SubscribeFunc(m, func(context.Context, UserCreated) error { return nil }))
	must(t, mediator.SubscribeFunc(m, func(context.Context, UserCreated) error { return errors.New("mail down") }))

	ctx := context.Background()
	if _, err := mediator.Send[GetUser, User](ctx, m, GetUser{ID: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := mediator.Send[GetUser, User](ctx, m, GetUser{ID: 2}); err == nil {
		t.Fatal("want error")
	}
	if err := mediator.Publish(ctx, m, UserCreated{}); err == nil {
		t.Fatal("want error")
	}

	var recs []map[string]any
	for line := range strings.Lines(buf.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		delete(rec, "time")
		if _, ok := rec["duration"].(float64); !ok {
			t.Errorf("record without duration: %v", rec)
		}
		delete(rec, "duration")
		recs = append(recs, rec)
	}
	want := []map[string]any{
		{"level": "DEBUG", "msg": "mediator: handled", "kind": "request", "type": "mediator_test.GetUser"},
		{"level": "ERROR", "msg": "mediator: handler failed", "kind": "request", "type": "mediator_test.GetUser", "error": "user 2 not found"},
		{"level": "DEBUG", "msg": "mediator: handled", "kind": "notification", "type": "mediator_test.UserCreated", "handler": float64(0)},
		{"level": "ERROR", "msg": "mediator: handler failed", "kind": "notification", "type": "mediator_test.UserCreated", "handler": float64(1), "error": "mail down"},
	}
	if len(recs) != len(want) {
		t.Fatalf("got %d records:\n%s", len(recs), buf.String())
	}
	for i := range want {
		g, _ := json.Marshal(recs[i])
		w, _ := json.Marshal(want[i])
		if string(g) != string(w) {
			t.Errorf("record %d\n got %s\nwant %s", i, g, w)
		}
	}
}

func TestTracingBehavior(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	m := newMediator(t, mediator.WithBehaviors(mediator.Tracing(tp)))
	var handlerSpans []trace.SpanContext
	must(t, mediator.RegisterFunc(m, func(ctx context.Context, q GetUser) (User, error) {
		handlerSpans = append(handlerSpans, trace.SpanContextFromContext(ctx))
		if q.ID == 0 {
			return User{}, errors.New("no id")
		}
		return User{ID: q.ID}, nil
	}))
	for range 3 {
		must(t, mediator.SubscribeFunc(m, func(ctx context.Context, _ UserCreated) error {
			handlerSpans = append(handlerSpans, trace.SpanContextFromContext(ctx))
			return nil
		}))
	}
	var ended string
	countTo(t, m, &ended, 0)

	ctx, parent := tp.Tracer("test").Start(context.Background(), "parent")
	_, _ = mediator.Send[GetUser, User](ctx, m, GetUser{ID: 1})
	_, _ = mediator.Send[GetUser, User](ctx, m, GetUser{})
	_ = mediator.Publish(ctx, m, UserCreated{})
	for range mediator.Stream[ListUsers, User](ctx, m, ListUsers{Limit: 2}) { //nolint:errcheck // the test records the spans of the stream, not its items
	}
	parent.End()

	spans := rec.Ended()
	type row struct {
		name, status string
		handlers     int64
	}
	var got []row
	for _, s := range spans {
		if s.Name() == "parent" {
			continue
		}
		if s.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("span %s is not a child of the caller's span", s.Name())
		}
		var handlers int64
		for _, a := range s.Attributes() {
			if a.Key == "mediator.handlers" {
				handlers = a.Value.AsInt64()
			}
		}
		got = append(got, row{s.Name(), s.Status().Code.String(), handlers})
	}
	want := []row{
		{"mediator.send mediator_test.GetUser", codes.Unset.String(), 1},
		{"mediator.send mediator_test.GetUser", codes.Error.String(), 1},
		{"mediator.publish mediator_test.UserCreated", codes.Unset.String(), 3},
		{"mediator.stream mediator_test.ListUsers", codes.Unset.String(), 1},
	}
	if len(got) != len(want) {
		t.Fatalf("spans %v; want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("span %d = %v; want %v", i, got[i], want[i])
		}
	}
	if ev := spans[1].Events(); len(ev) != 1 || ev[0].Name != "exception" {
		t.Errorf("failed span events %v; want the recorded error", ev)
	}
	// Handlers run inside the mediator's span: one span per Send, one per
	// Publish shared by its three handlers.
	if len(handlerSpans) != 5 || handlerSpans[0].SpanID() != spans[0].SpanContext().SpanID() ||
		handlerSpans[2].SpanID() != spans[2].SpanContext().SpanID() || handlerSpans[4].SpanID() != spans[2].SpanContext().SpanID() {
		t.Errorf("handler span contexts do not match the mediator spans")
	}
}

type SignUp struct{ Email string }

func (r SignUp) Validate() error {
	if !strings.Contains(r.Email, "@") {
		return errors.New("email must contain @")
	}
	return nil
}

type Rename struct{ Name string }

func (r *Rename) Validate() error {
	if r.Name == "" {
		return errors.New("name is required")
	}
	return nil
}

func TestValidationBehavior(t *testing.T) {
	m := newMediator(t, mediator.WithBehaviors(mediator.Validation()))
	handled := 0
	must(t, mediator.RegisterCommand(m, func(context.Context, SignUp) error { handled++; return nil }))
	must(t, mediator.RegisterCommand(m, func(context.Context, Rename) error { handled++; return nil }))
	must(t, mediator.RegisterCommand(m, func(context.Context, *Rename) error { handled++; return nil }))
	ctx := context.Background()

	cases := []struct {
		name string
		run  func() error
		want string // "" = valid
	}{
		{"value receiver, valid", func() error { return mediator.Execute(ctx, m, SignUp{Email: "a@b"}) }, ""},
		{"value receiver, invalid", func() error { return mediator.Execute(ctx, m, SignUp{Email: "ab"}) },
			"mediator: invalid mediator_test.SignUp: email must contain @"},
		{"pointer receiver on value request, invalid", func() error { return mediator.Execute(ctx, m, Rename{}) },
			"mediator: invalid mediator_test.Rename: name is required"},
		{"pointer receiver on value request, valid", func() error { return mediator.Execute(ctx, m, Rename{Name: "x"}) }, ""},
		{"pointer request, invalid", func() error { return mediator.Execute(ctx, m, &Rename{}) },
			"mediator: invalid *mediator_test.Rename: name is required"},
	}
	for _, c := range cases {
		before := handled
		err := c.run()
		if c.want == "" {
			if err != nil || handled != before+1 {
				t.Errorf("%s: err %v, handler ran %d times", c.name, err, handled-before)
			}
			continue
		}
		var ve *mediator.ValidationError
		if !errors.As(err, &ve) || err.Error() != c.want || handled != before {
			t.Errorf("%s: err %v (handler ran %d times); want %q before the handler", c.name, err, handled-before, c.want)
		}
	}

	// Notifications are validated once per Publish, before any handler.
	notified := 0
	for range 2 {
		must(t, mediator.SubscribeFunc(m, func(context.Context, SignUp) error { notified++; return nil }))
	}
	var ve *mediator.ValidationError
	if err := mediator.Publish(ctx, m, SignUp{}); !errors.As(err, &ve) || notified != 0 {
		t.Fatalf("Publish invalid: %v, notified %d", err, notified)
	}
	if err := mediator.Publish(ctx, m, SignUp{Email: "a@b"}); err != nil || notified != 2 {
		t.Fatalf("Publish valid: %v, notified %d", err, notified)
	}
}

func TestRecoverBehavior(t *testing.T) {
	m := newMediator(t, mediator.WithBehaviors(mediator.Recover()), mediator.WithPublishStrategy(mediator.RunAll))
	errSentinel := errors.New("sentinel")
	must(t, mediator.RegisterFunc(m, func(_ context.Context, q GetUser) (User, error) {
		if q.ID == 1 {
			panic(errSentinel)
		}
		var users map[int]*User
		return *users[q.ID], nil // nil pointer dereference
	}))
	ctx := context.Background()
	_, err := mediator.Send[GetUser, User](ctx, m, GetUser{ID: 1})
	var pe *mediator.PanicError
	if !errors.As(err, &pe) || !errors.Is(err, errSentinel) || pe.Kind != mediator.KindRequest || pe.Type != "mediator_test.GetUser" {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(string(pe.Stack), "TestRecoverBehavior") {
		t.Errorf("stack does not show the panicking handler:\n%s", pe.Stack)
	}
	_, err = mediator.Send[GetUser, User](ctx, m, GetUser{ID: 2})
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "nil pointer dereference") {
		t.Fatalf("err = %v", err)
	}

	// RunAll: a panicking handler does not stop the next one.
	ran := false
	must(t, mediator.SubscribeFunc(m, func(context.Context, UserCreated) error { panic("first") }))
	must(t, mediator.SubscribeFunc(m, func(context.Context, UserCreated) error { ran = true; return nil }))
	if err := mediator.Publish(ctx, m, UserCreated{}); !errors.As(err, &pe) || pe.Value != "first" || !ran {
		t.Fatalf("Publish err %v, second ran %v", err, ran)
	}
}

func TestTimeoutBehavior(t *testing.T) {
	m := newMediator(t, mediator.WithBehaviors(mediator.Timeout(20*time.Millisecond)))
	var deadline time.Time
	must(t, mediator.RegisterFunc(m, func(ctx context.Context, q GetUser) (User, error) {
		deadline, _ = ctx.Deadline()
		if q.ID == 0 {
			<-ctx.Done()
			return User{}, ctx.Err()
		}
		return User{ID: q.ID}, nil
	}))
	ctx := context.Background()
	if u, err := mediator.Send[GetUser, User](ctx, m, GetUser{ID: 1}); err != nil || u.ID != 1 || deadline.IsZero() {
		t.Fatalf("fast handler: %v %v deadline %v", u, err, deadline)
	}
	_, err := mediator.Send[GetUser, User](ctx, m, GetUser{})
	if !errors.Is(err, context.DeadlineExceeded) || err.Error() != "mediator: request mediator_test.GetUser exceeded its 20ms timeout: context deadline exceeded" {
		t.Fatalf("slow handler: %v", err)
	}
	// A caller's own cancellation is not reported as the behaviour's timeout.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := mediator.Send[GetUser, User](cctx, m, GetUser{}); err != context.Canceled {
		t.Fatalf("cancelled caller: %v", err)
	}
	// d <= 0 disables the behaviour.
	m2 := newMediator(t, mediator.WithBehaviors(mediator.Timeout(0)))
	must(t, mediator.RegisterFunc(m2, func(ctx context.Context, q GetUser) (User, error) {
		if _, ok := ctx.Deadline(); ok {
			return User{}, errors.New("unexpected deadline")
		}
		return User{}, nil
	}))
	if _, err := mediator.Send[GetUser, User](ctx, m2, GetUser{}); err != nil {
		t.Fatal(err)
	}
}
