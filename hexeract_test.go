package hexeract_test

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

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters/gochannel"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/router"
)

type UserRegistered struct {
	UserID string `json:"user_id"`
	Email  string `json:"email"`
}

func (UserRegistered) MessageType() string { return "users.registered" }

type OrderPlaced struct {
	OrderID string `json:"order_id"`
	Total   int    `json:"total"`
}

func (OrderPlaced) MessageType() string { return "orders.placed" }

func (o OrderPlaced) OrderingKey() string { return o.OrderID }

// impostor takes a wire name that UserRegistered already has.
type impostor struct{}

func (impostor) MessageType() string { return "users.registered" }

func TestTypedRoundTripCarriesTheEnvelope(t *testing.T) {
	app, err := hexeract.New(hexeract.WithSource("/tests"))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	got := make(chan router.Envelope, 1)
	gotMsg := make(chan UserRegistered, 1)
	if err := hexeract.HandleFunc(app, func(ctx context.Context, ev UserRegistered) error {
		env, ok := router.EnvelopeFrom(ctx)
		if !ok {
			return errors.New("no envelope in handler context")
		}
		got <- env
		gotMsg <- ev
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	stop := testenv.RunApp(t, app)
	ctx := router.WithCorrelationID(context.Background(), "req-42")
	before := time.Now().Add(-time.Second)
	if err := app.Publish(ctx, UserRegistered{UserID: "u-1", Email: "ada@example.com"}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-gotMsg:
		if ev != (UserRegistered{UserID: "u-1", Email: "ada@example.com"}) {
			t.Fatalf("handler got %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("message not handled")
	}
	env := <-got
	if env.Type != "users.registered" || env.Source != "/tests" || env.SpecVersion != "1.0" ||
		env.ContentType != "application/json" || env.CorrelationID != "req-42" || env.ID == "" ||
		env.Topic != "users.registered" || env.Time.Before(before) || env.Time.After(time.Now()) {
		t.Fatalf("envelope = %+v", env)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestPublishFromHandlerIsCorrelatedAndCaused(t *testing.T) {
	app, _ := hexeract.New()
	defer app.Close()
	first := make(chan router.Envelope, 1)
	second := make(chan router.Envelope, 1)
	_ = hexeract.HandleFunc(app, func(ctx context.Context, ev UserRegistered) error {
		env, _ := router.EnvelopeFrom(ctx)
		first <- env
		return app.Publish(ctx, OrderPlaced{OrderID: "o-" + ev.UserID, Total: 3})
	})
	_ = hexeract.HandleFunc(app, func(ctx context.Context, ev OrderPlaced) error {
		env, _ := router.EnvelopeFrom(ctx)
		second <- env
		return nil
	})
	testenv.RunApp(t, app)
	if err := app.Publish(context.Background(), UserRegistered{UserID: "1"}); err != nil {
		t.Fatal(err)
	}
	e1, e2 := recv(t, first), recv(t, second)
	if e1.CorrelationID != e1.ID {
		t.Fatalf("first message of a conversation: correlation %q, id %q", e1.CorrelationID, e1.ID)
	}
	if e2.CorrelationID != e1.CorrelationID || e2.CausationID != e1.ID {
		t.Fatalf("second hop: correlation %q cause %q; want %q and %q", e2.CorrelationID, e2.CausationID, e1.CorrelationID, e1.ID)
	}
	if e2.Metadata.Get(router.KeyPartitionKey) != "o-1" {
		t.Fatalf("ordering key not in envelope: %v", e2.Metadata)
	}
}

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting")
		panic("unreachable")
	}
}

// TestBadMessagesDoNotStopTheRouter feeds malformed JSON and an unknown type
// to a typed handler. Each gives a permanent DecodeError naming the message id,
// topic and cause; with permanent errors moved aside (here Watermill's own
// PoisonQueue), the good messages after them are all handled.
func TestBadMessagesDoNotStopTheRouter(t *testing.T) {
	ps := gochannel.New(gochannel.Config{}, nil)
	app, _ := hexeract.New(hexeract.WithPubSub(ps, ps))
	defer app.Close()

	var errMu sync.Mutex
	var decodeErrs []*router.DecodeError
	capture := func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			var de *router.DecodeError
			if errors.As(err, &de) {
				errMu.Lock()
				decodeErrs = append(decodeErrs, de)
				errMu.Unlock()
			}
			return out, err
		}
	}
	poisoned := make(chan *message.Message, 10)
	poison := func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			_, err := h(msg)
			if router.IsPermanent(err) {
				poisoned <- msg
				return nil, nil
			}
			return nil, err
		}
	}
	app.Use(poison, capture)
	var handled atomic.Int32
	_ = hexeract.HandleFunc(app, func(ctx context.Context, ev UserRegistered) error {
		handled.Add(1)
		return nil
	})
	testenv.RunApp(t, app)

	good := func(i int) *message.Message {
		m, _ := app.NewMessage(context.Background(), UserRegistered{UserID: fmt.Sprint(i)})
		return m
	}
	garbage := message.NewMessage("bad-json", []byte("{not json"))
	garbage.Metadata.Set(router.KeyType, "users.registered")
	unknown := message.NewMessage("bad-type", []byte(`{"user_id":"x"}`))
	unknown.Metadata.Set(router.KeyType, "users.deleted")
	untyped := message.NewMessage("no-type", []byte(`{"user_id":"x"}`))
	for _, m := range []*message.Message{good(1), garbage, good(2), unknown, good(3), untyped, good(4)} {
		if err := ps.Publish("users.registered", m); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for handled.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if handled.Load() != 4 {
		t.Fatalf("handled %d good messages, want 4", handled.Load())
	}
	if len(poisoned) != 3 {
		t.Fatalf("%d messages moved aside, want 3", len(poisoned))
	}
	errMu.Lock()
	defer errMu.Unlock()
	causes := map[string]string{}
	for _, de := range decodeErrs {
		if !strings.Contains(de.Error(), de.MessageID) || !strings.Contains(de.Error(), "users.registered") {
			t.Errorf("error does not name message and topic: %v", de)
		}
		causes[de.MessageID] = de.Err.Error()
	}
	if !strings.Contains(causes["bad-json"], "invalid character") {
		t.Errorf("bad-json cause = %q", causes["bad-json"])
	}
	var mismatch *router.TypeMismatchError
	for _, de := range decodeErrs {
		if de.MessageID == "bad-type" && !errors.As(de, &mismatch) {
			t.Errorf("bad-type cause = %v", de.Err)
		}
		if de.MessageID == "no-type" && !errors.Is(de, router.ErrMissingType) {
			t.Errorf("no-type cause = %v", de.Err)
		}
	}
}

func TestConcurrentPublishersLoseNothing(t *testing.T) {
	app, _ := hexeract.New()
	defer app.Close()
	const publishers, each = 32, 200
	var mu sync.Mutex
	seen := make(map[string]int, publishers*each)
	var wg sync.WaitGroup
	wg.Add(publishers * each)
	_ = hexeract.HandleFunc(app, func(ctx context.Context, ev UserRegistered) error {
		mu.Lock()
		seen[ev.UserID]++
		mu.Unlock()
		wg.Done()
		return nil
	})
	testenv.RunApp(t, app)
	var pubs sync.WaitGroup
	for p := range publishers {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for i := range each {
				if err := app.Publish(context.Background(), UserRegistered{UserID: fmt.Sprintf("%d-%d", p, i)}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	pubs.Wait()
	waitGroup(t, &wg, 20*time.Second)
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != publishers*each {
		t.Fatalf("handled %d distinct messages, want %d", len(seen), publishers*each)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("message %s handled %d times", id, n)
		}
	}
}

func waitGroup(t *testing.T, wg *sync.WaitGroup, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("timed out after %v", d)
	}
}

// TestCancelRunLetsInFlightHandlersFinish cancels Run while handlers are
// blocked mid-message: Run waits for them, and every one of them completes
// and is acknowledged.
func TestCancelRunLetsInFlightHandlersFinish(t *testing.T) {
	ps := gochannel.New(gochannel.Config{}, nil)
	app, _ := hexeract.New(hexeract.WithPubSub(ps, ps))
	defer app.Close()
	const inFlight = 8
	entered := make(chan struct{}, inFlight)
	release := make(chan struct{})
	var completed atomic.Int32
	// Several handlers (one per name) so several messages are in flight at once:
	// GoChannel delivers one message at a time per subscription.
	for i := range inFlight {
		err := hexeract.HandleFunc(app, func(ctx context.Context, ev UserRegistered) error {
			entered <- struct{}{}
			<-release
			time.Sleep(20 * time.Millisecond) // still working after Run was cancelled
			completed.Add(1)
			return nil
		}, hexeract.WithName(fmt.Sprintf("slow-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
	}
	stop := testenv.RunApp(t, app)
	acked := make(chan bool, 1)
	msg, _ := app.NewMessage(context.Background(), UserRegistered{UserID: "x"})
	go func() {
		// GoChannel copies the message for each subscriber; count acks through a
		// subscriber-level view instead: completion of all handlers below.
		acked <- ps.Publish("users.registered", msg) == nil
	}()
	for range inFlight {
		recv(t, entered)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	select {
	case err := <-stopped:
		t.Fatalf("Run returned (%v) while %d handlers were still in flight", err, inFlight)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := recv(t, stopped); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := completed.Load(); got != inFlight {
		t.Fatalf("%d of %d in-flight handlers completed", got, inFlight)
	}
	if !recv(t, acked) {
		t.Fatal("publish failed")
	}
}

func TestRegistrationErrors(t *testing.T) {
	app, _ := hexeract.New()
	defer app.Close()
	ok := func(context.Context, UserRegistered) error { return nil }
	if err := hexeract.HandleFunc(app, ok); err != nil {
		t.Fatal(err)
	}
	err := hexeract.HandleFunc(app, ok)
	if err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Fatalf("second handler with the same name: %v", err)
	}
	if err := hexeract.HandleFunc(app, ok, hexeract.WithName("audit")); err != nil {
		t.Fatalf("second handler with its own name: %v", err)
	}
	err = hexeract.HandleFunc(app, func(context.Context, impostor) error { return nil })
	if err == nil || !strings.Contains(err.Error(), `"users.registered" is already registered`) {
		t.Fatalf("duplicate wire name for another type: %v", err)
	}
	if err := hexeract.HandleFunc[UserRegistered](app, nil); err == nil {
		t.Fatal("nil handler func accepted")
	}
	if err := hexeract.Handle[UserRegistered](app, nil); err == nil {
		t.Fatal("nil handler accepted")
	}
	var nilFunc router.HandlerFunc[UserRegistered]
	if err := hexeract.Handle[UserRegistered](app, nilFunc); err == nil {
		t.Fatal("nil HandlerFunc accepted")
	}
	pubOnly, _ := hexeract.New(hexeract.WithPublisher(gochannel.New(gochannel.Config{}, nil)))
	if err := hexeract.HandleFunc(pubOnly, ok); err == nil || !strings.Contains(err.Error(), "WithSubscriber") {
		t.Fatalf("handler without subscriber: %v", err)
	}
}

func TestTopicFunc(t *testing.T) {
	ps := gochannel.New(gochannel.Config{Persistent: true}, nil)
	app, _ := hexeract.New(hexeract.WithPubSub(ps, ps), hexeract.WithTopicFunc(func(name string) string { return "prod." + name }))
	defer app.Close()
	if err := app.Publish(context.Background(), UserRegistered{UserID: "1"}); err != nil {
		t.Fatal(err)
	}
	msgs, err := ps.Subscribe(context.Background(), "prod.users.registered")
	if err != nil {
		t.Fatal(err)
	}
	m := recv(t, msgs)
	m.Ack()
	if m.Metadata.Get(router.KeyType) != "users.registered" {
		t.Fatalf("ce_type = %q", m.Metadata.Get(router.KeyType))
	}
}
