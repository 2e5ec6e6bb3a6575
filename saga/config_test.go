package saga_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/saga"
)

func TestRegisterRefusesBadDefinitions(t *testing.T) {
	app, err := hexeract.New(hexeract.WithLogger(quietLogger()))
	must(t, err)
	defer app.Close()
	mem := saga.NewMemoryStore()
	noop := func(c *saga.Context[Counter], s *Counter, e CounterStarted) error { return nil }
	key := func(e CounterStarted) string { return e.ID }

	cases := map[string]struct {
		def  func() *saga.Definition[Counter]
		want string
	}{
		"empty name": {func() *saga.Definition[Counter] {
			d := saga.Define[Counter]("")
			saga.StartedBy(d, key, noop)
			return d
		}, "non-empty saga name"},
		"no events": {func() *saga.Definition[Counter] { return saga.Define[Counter]("x") }, "no events"},
		"no start event": {func() *saga.Definition[Counter] {
			d := saga.Define[Counter]("x")
			saga.Handles(d, key, noop)
			return d
		}, "no start event"},
		"event twice": {func() *saga.Definition[Counter] {
			d := saga.Define[Counter]("x")
			saga.StartedBy(d, key, noop)
			saga.Handles(d, key, noop)
			return d
		}, "declared twice"},
		"nil handler": {func() *saga.Definition[Counter] {
			d := saga.Define[Counter]("x")
			saga.StartedBy(d, key, nil)
			return d
		}, "needs a correlate function and a handler"},
	}
	for name, tc := range cases {
		err := saga.Register(app, tc.def(), mem)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Register error = %v, want one containing %q", name, err, tc.want)
		}
	}

	must(t, saga.Register(app, counterSaga(), mem))
	if err := saga.Register(app, counterSaga(), mem); err == nil || !strings.Contains(err.Error(), "already installed") {
		t.Errorf("second saga of the same name: %v", err)
	}
}

func TestSQLStoreNeedsOutboxAndScheduler(t *testing.T) {
	f := newFixture(t, true)
	app, _ := f.newApp(appConfig{})
	err := saga.Register(app, orderSaga("orders", time.Minute), f.store)
	if err == nil || !strings.Contains(err.Error(), "saga.WithOutbox") {
		t.Fatalf("Register without an outbox: %v", err)
	}
	err = saga.Register(app, orderSaga("orders", time.Minute), f.store, saga.WithOutbox(f.ob))
	if err == nil || !strings.Contains(err.Error(), "saga.WithScheduler") {
		t.Fatalf("Register of a saga with timeouts without a scheduler: %v", err)
	}
	if _, err := saga.NewSQLStore(f.drv, saga.WithTable("bad name; drop")); err == nil {
		t.Fatal("a bad table name was accepted")
	}
}

// Misuse inside a handler (an empty correlation key, a timeout without a
// handler) dead-letters the message at once with a clear error.
func TestHandlerMisuseIsDeadLettered(t *testing.T) {
	f := newFixture(t, false)
	app, ps := f.newApp(appConfig{})
	def := saga.Define[Counter]("misuse")
	saga.StartedBy(def, func(e CounterStarted) string { return e.ID },
		func(c *saga.Context[Counter], s *Counter, e CounterStarted) error {
			c.Timeout(time.Second, PaymentDue{})
			return nil
		})
	must(t, saga.Register(app, def, f.store, f.opts()...))
	dead := subscribe(t, ps, "test.counter.started.dlq")
	testenv.StartApp(t, app)

	publish(t, app, CounterStarted{ID: ""})
	m := waitMsg(t, dead, 5*time.Second)
	if e := m.Metadata.Get(router.KeyFaultError); !strings.Contains(e, "empty correlation key") || m.Metadata.Get(router.KeyFaultAttempts) != "1" {
		t.Fatalf("empty key: %v", m.Metadata)
	}
	publish(t, app, CounterStarted{ID: "m-1"})
	m = waitMsg(t, dead, 5*time.Second)
	if e := m.Metadata.Get(router.KeyFaultError); !strings.Contains(e, "declare it with saga.OnTimeout") {
		t.Fatalf("timeout without handler: %v", m.Metadata)
	}
	if f.instance("misuse", "m-1") != nil {
		t.Fatal("the failed transition was saved")
	}
}
