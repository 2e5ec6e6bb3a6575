package saga_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/saga"
)

// The test domain: an order saga that reserves stock, charges a payment and
// ships, with a payment deadline.

type OrderPlaced struct {
	OrderID string `json:"order_id"`
	Amount  int    `json:"amount"`
}

func (OrderPlaced) MessageType() string { return "test.order.placed" }

type ReserveStock struct{ OrderID string }

func (ReserveStock) MessageType() string { return "test.stock.reserve" }

type StockReserved struct{ OrderID string }

func (StockReserved) MessageType() string { return "test.stock.reserved" }

type ReleaseStock struct{ OrderID string }

func (ReleaseStock) MessageType() string { return "test.stock.release" }

type ChargePayment struct {
	OrderID string
	Amount  int
}

func (ChargePayment) MessageType() string { return "test.payment.charge" }

type PaymentCharged struct{ OrderID string }

func (PaymentCharged) MessageType() string { return "test.payment.charged" }

type PaymentFailed struct {
	OrderID string
	Reason  string
}

func (PaymentFailed) MessageType() string { return "test.payment.failed" }

type ShipOrder struct{ OrderID string }

func (ShipOrder) MessageType() string { return "test.order.ship" }

type OrderShipped struct{ OrderID string }

func (OrderShipped) MessageType() string { return "test.order.shipped" }

type PaymentDue struct{ OrderID string }

func (PaymentDue) MessageType() string { return "test.order.payment_due" }

type OrderCancelled struct{ OrderID string }

func (OrderCancelled) MessageType() string { return "test.order.cancelled" }

type Order struct {
	OrderID   string
	Amount    int
	Reserved  bool
	Paid      bool
	TimedOut  bool
	Shipped   bool
	Transited []string
}

// orderSaga defines the order saga; paymentDue is the payment deadline set
// when the order is placed.
func orderSaga(name string, paymentDue time.Duration) *saga.Definition[Order] {
	def := saga.Define[Order](name)
	saga.StartedBy(def, func(e OrderPlaced) string { return e.OrderID },
		func(c *saga.Context[Order], s *Order, e OrderPlaced) error {
			s.OrderID, s.Amount = e.OrderID, e.Amount
			s.Transited = append(s.Transited, "placed")
			c.Send(ReserveStock{OrderID: e.OrderID})
			c.Timeout(paymentDue, PaymentDue{OrderID: e.OrderID})
			return nil
		})
	saga.Handles(def, func(e StockReserved) string { return e.OrderID },
		func(c *saga.Context[Order], s *Order, e StockReserved) error {
			s.Reserved = true
			s.Transited = append(s.Transited, "reserved")
			c.Compensate(ReleaseStock{OrderID: s.OrderID})
			c.Send(ChargePayment{OrderID: s.OrderID, Amount: s.Amount})
			return nil
		})
	saga.Handles(def, func(e PaymentCharged) string { return e.OrderID },
		func(c *saga.Context[Order], s *Order, e PaymentCharged) error {
			s.Paid = true
			s.Transited = append(s.Transited, "paid")
			c.CancelTimeout(PaymentDue{})
			c.Send(ShipOrder{OrderID: s.OrderID})
			return nil
		})
	saga.Handles(def, func(e PaymentFailed) string { return e.OrderID },
		func(c *saga.Context[Order], s *Order, e PaymentFailed) error {
			s.Transited = append(s.Transited, "payment failed")
			c.Fail(errors.New(e.Reason))
			return nil
		})
	saga.Handles(def, func(e OrderShipped) string { return e.OrderID },
		func(c *saga.Context[Order], s *Order, e OrderShipped) error {
			s.Shipped = true
			s.Transited = append(s.Transited, "shipped")
			c.Complete()
			return nil
		})
	saga.OnTimeout(def, func(c *saga.Context[Order], s *Order, t PaymentDue) error {
		s.TimedOut = true
		s.Transited = append(s.Transited, "timed out")
		c.Send(OrderCancelled{OrderID: s.OrderID})
		c.Fail(errors.New("payment not received in time"))
		return nil
	})
	return def
}

// services adds the stock, payment and shipping services: they answer the
// saga's commands. Payments of more than 100 fail; payments of exactly 13
// never answer (so the deadline passes).
func services(t *testing.T, app *hexeract.App) (released *recorder[ReleaseStock], cancelled *recorder[OrderCancelled]) {
	t.Helper()
	must(t, hexeract.HandleFunc(app, func(ctx context.Context, m ReserveStock) error {
		return app.Publish(ctx, StockReserved(m))
	}))
	must(t, hexeract.HandleFunc(app, func(ctx context.Context, m ChargePayment) error {
		switch {
		case m.Amount == 13:
			return nil
		case m.Amount > 100:
			return app.Publish(ctx, PaymentFailed{OrderID: m.OrderID, Reason: "card declined"})
		}
		return app.Publish(ctx, PaymentCharged{OrderID: m.OrderID})
	}))
	must(t, hexeract.HandleFunc(app, func(ctx context.Context, m ShipOrder) error {
		return app.Publish(ctx, OrderShipped(m))
	}))
	return record[ReleaseStock](t, app), record[OrderCancelled](t, app)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func state(t *testing.T, in *saga.Instance) Order {
	t.Helper()
	var s Order
	if err := jsonUnmarshal(in.State, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestHappyPath(t *testing.T) {
	backends(t, func(t *testing.T, f *fixture) {
		app, _ := f.newApp(appConfig{relay: true, scheduler: true})
		released, cancelled := services(t, app)
		shipped := record[OrderShipped](t, app)
		must(t, saga.Register(app, orderSaga("orders", time.Minute), f.store, f.opts(saga.WithRetention(time.Hour))...))
		testenv.StartApp(t, app)

		publish(t, app, OrderPlaced{OrderID: "o-1", Amount: 42})
		eventually(t, 10*time.Second, "order o-1 completed", func() bool {
			in := f.instance("orders", "o-1")
			return in != nil && in.Status == saga.Completed
		})
		in := f.instance("orders", "o-1")
		s := state(t, in)
		if want := []string{"placed", "reserved", "paid", "shipped"}; !slices.Equal(s.Transited, want) {
			t.Fatalf("transitions = %v, want %v", s.Transited, want)
		}
		if !s.Paid || !s.Shipped || s.TimedOut || in.CompletedAt.IsZero() || len(in.Meta.Timeouts) != 0 || len(in.Meta.Compensations) != 0 {
			t.Fatalf("completed instance = %+v, state %+v", in, s)
		}
		if in.Version != 4 {
			t.Fatalf("version = %d, want 4 (one per transition)", in.Version)
		}
		eventually(t, 5*time.Second, "OrderShipped seen by the test", func() bool { return shipped.len() == 1 })
		if released.len() != 0 || cancelled.len() != 0 {
			t.Fatalf("happy path released stock (%d) or cancelled (%d)", released.len(), cancelled.len())
		}
		if f.pg {
			// The payment deadline was cancelled in the scheduler table.
			if n := f.count(f.tables.sched, ""); n != 0 {
				t.Fatalf("%d scheduled messages left, want the cancelled deadline gone", n)
			}
		}
	})
}

func TestCompletedInstanceIsDeletedWithoutRetention(t *testing.T) {
	backends(t, func(t *testing.T, f *fixture) {
		app, _ := f.newApp(appConfig{relay: true, scheduler: true})
		services(t, app)
		shipped := record[OrderShipped](t, app)
		must(t, saga.Register(app, orderSaga("orders", time.Minute), f.store, f.opts()...))
		testenv.StartApp(t, app)
		publish(t, app, OrderPlaced{OrderID: "o-2", Amount: 5})
		eventually(t, 10*time.Second, "o-2 shipped and deleted", func() bool {
			return shipped.len() == 1 && f.instance("orders", "o-2") == nil
		})
		// A late event for the deleted instance goes to the dead letters (the
		// default unknown-instance outcome), not to a new instance.
	})
}

func TestPaymentFailureReleasesStock(t *testing.T) {
	backends(t, func(t *testing.T, f *fixture) {
		app, _ := f.newApp(appConfig{relay: true, scheduler: true})
		released, cancelled := services(t, app)
		must(t, saga.Register(app, orderSaga("orders", time.Minute), f.store, f.opts(saga.WithRetention(time.Hour))...))
		testenv.StartApp(t, app)
		publish(t, app, OrderPlaced{OrderID: "o-3", Amount: 500})
		eventually(t, 10*time.Second, "o-3 failed and compensated", func() bool {
			in := f.instance("orders", "o-3")
			return in != nil && in.Status == saga.Failed && released.len() == 1
		})
		in := f.instance("orders", "o-3")
		if in.Meta.Failure != "card declined" || len(in.Meta.Compensations) != 0 || len(in.Meta.Timeouts) != 0 {
			t.Fatalf("failed instance meta = %+v", in.Meta)
		}
		msgs, envs := released.all()
		if msgs[0].OrderID != "o-3" || envs[0].Metadata.Get(router.KeySagaKey) != "o-3" || envs[0].Metadata.Get(router.KeySagaName) != "orders" {
			t.Fatalf("ReleaseStock = %+v, metadata %v", msgs[0], envs[0].Metadata)
		}
		if cancelled.len() != 0 {
			t.Fatal("a failed payment also cancelled through the timeout")
		}
	})
}

func TestTimeoutFires(t *testing.T) {
	backends(t, func(t *testing.T, f *fixture) {
		app, _ := f.newApp(appConfig{relay: true, scheduler: true})
		released, cancelled := services(t, app)
		must(t, saga.Register(app, orderSaga("orders", 300*time.Millisecond), f.store, f.opts(saga.WithRetention(time.Hour))...))
		testenv.StartApp(t, app)
		placed := time.Now()
		publish(t, app, OrderPlaced{OrderID: "o-4", Amount: 13}) // the payment never answers
		eventually(t, 15*time.Second, "o-4 cancelled by its deadline", func() bool {
			in := f.instance("orders", "o-4")
			return cancelled.len() == 1 && released.len() == 1 && in != nil && in.Status == saga.Failed
		})
		if waited := time.Since(placed); waited < 300*time.Millisecond {
			t.Fatalf("the deadline fired after %s, before its 300ms", waited)
		}
		s := state(t, f.instance("orders", "o-4"))
		if want := []string{"placed", "reserved", "timed out"}; !slices.Equal(s.Transited, want) {
			t.Fatalf("transitions = %v, want %v", s.Transited, want)
		}
	})
}

func TestTimeoutCancelledByCompletion(t *testing.T) {
	backends(t, func(t *testing.T, f *fixture) {
		app, _ := f.newApp(appConfig{relay: true, scheduler: true})
		services(t, app)
		def := saga.Define[Order]("quick")
		saga.StartedBy(def, func(e OrderPlaced) string { return e.OrderID },
			func(c *saga.Context[Order], s *Order, e OrderPlaced) error {
				c.Timeout(400*time.Millisecond, PaymentDue{OrderID: e.OrderID})
				c.Send(ShipOrder{OrderID: e.OrderID})
				return nil
			})
		saga.Handles(def, func(e OrderShipped) string { return e.OrderID },
			func(c *saga.Context[Order], s *Order, e OrderShipped) error {
				s.Shipped = true
				c.Complete()
				return nil
			})
		timeouts := 0
		var mu sync.Mutex
		saga.OnTimeout(def, func(c *saga.Context[Order], s *Order, t PaymentDue) error {
			mu.Lock()
			timeouts++
			mu.Unlock()
			return nil
		})
		must(t, saga.Register(app, def, f.store, f.opts(saga.WithRetention(time.Hour))...))
		testenv.StartApp(t, app)
		publish(t, app, OrderPlaced{OrderID: "o-5"})
		eventually(t, 10*time.Second, "o-5 completed", func() bool {
			in := f.instance("quick", "o-5")
			return in != nil && in.Status == saga.Completed
		})
		if f.pg {
			if n := f.count(f.tables.sched, ""); n != 0 {
				t.Fatalf("%d scheduled timeouts left after completion, want 0", n)
			}
		}
		time.Sleep(800 * time.Millisecond) // twice the timeout
		mu.Lock()
		defer mu.Unlock()
		if timeouts != 0 {
			t.Fatalf("the cancelled timeout fired %d times", timeouts)
		}
	})
}

// A timeout that arrives although the instance moved on (its token was
// replaced or removed) is acknowledged and ignored.
func TestStaleTimeoutIgnored(t *testing.T) {
	backends(t, func(t *testing.T, f *fixture) {
		app, ps := f.newApp(appConfig{relay: true, scheduler: true})
		_, cancelled := services(t, app)
		must(t, saga.Register(app, orderSaga("orders", time.Hour), f.store, f.opts(saga.WithRetention(time.Hour))...))
		dead := subscribe(t, ps, "hexeract.saga.timeout.dlq")
		testenv.StartApp(t, app)
		publish(t, app, OrderPlaced{OrderID: "o-6", Amount: 13})
		eventually(t, 10*time.Second, "o-6 waits for its payment", func() bool {
			in := f.instance("orders", "o-6")
			return in != nil && len(in.Meta.Timeouts) == 1 && state(t, in).Reserved
		})
		in := f.instance("orders", "o-6")
		payload, _ := jsonMarshal(PaymentDue{OrderID: "o-6"})
		// A delivery with a token the instance does not hold, then one for
		// a saga instance that does not exist.
		publish(t, app,
			saga.TimeoutMessage{Saga: "orders", Key: "o-6", Token: "not-the-token", Type: PaymentDue{}.MessageType(), Payload: payload},
			saga.TimeoutMessage{Saga: "orders", Key: "o-missing", Token: "x", Type: PaymentDue{}.MessageType(), Payload: payload})
		time.Sleep(300 * time.Millisecond)
		after := f.instance("orders", "o-6")
		if after.Version != in.Version || after.Status != saga.Running || cancelled.len() != 0 {
			t.Fatalf("a stale timeout changed the instance: before v%d, after v%d %s", in.Version, after.Version, after.Status)
		}
		// The real token fires the timeout.
		tok := in.Meta.Timeouts[PaymentDue{}.MessageType()].Token
		publish(t, app, saga.TimeoutMessage{Saga: "orders", Key: "o-6", Token: tok, Type: PaymentDue{}.MessageType(), Payload: payload})
		eventually(t, 10*time.Second, "the valid timeout cancels o-6", func() bool { return cancelled.len() == 1 })
		select {
		case m := <-dead:
			t.Fatalf("a stale timeout was dead-lettered: %v", m.Metadata)
		default:
		}
	})
}

// Trip: three bookings whose compensations must run in reverse order.

type TripRequested struct{ TripID string }

func (TripRequested) MessageType() string { return "test.trip.requested" }

type TripStep struct {
	TripID string
	Step   string // "flight", "hotel", "car" or "fail"
}

func (TripStep) MessageType() string { return "test.trip.step" }

type Undo struct{ What string }

func (Undo) MessageType() string { return "test.trip.undo" }

type NotifyCustomer struct{ TripID string }

func (NotifyCustomer) MessageType() string { return "test.trip.notify" }

type Trip struct{ Booked []string }

func tripSaga(name string, undo func(c *saga.Context[Trip], u Undo) error) *saga.Definition[Trip] {
	def := saga.Define[Trip](name)
	saga.StartedBy(def, func(e TripRequested) string { return e.TripID },
		func(c *saga.Context[Trip], s *Trip, e TripRequested) error {
			// The first compensation has no OnCompensate handler: it is
			// sent on its topic for another service.
			c.Compensate(NotifyCustomer{TripID: e.TripID})
			return nil
		})
	saga.Handles(def, func(e TripStep) string { return e.TripID },
		func(c *saga.Context[Trip], s *Trip, e TripStep) error {
			if e.Step == "fail" {
				c.Fail(errors.New("no car available"))
				return nil
			}
			s.Booked = append(s.Booked, e.Step)
			c.Compensate(Undo{What: e.Step})
			return nil
		})
	saga.OnCompensate(def, func(c *saga.Context[Trip], s *Trip, u Undo) error { return undo(c, u) })
	return def
}

func TestCompensationsRunInReverseOrder(t *testing.T) {
	backends(t, func(t *testing.T, f *fixture) {
		app, _ := f.newApp(appConfig{relay: true, scheduler: true})
		notified := record[NotifyCustomer](t, app)
		var mu sync.Mutex
		var undone []string
		def := tripSaga("trips", func(c *saga.Context[Trip], u Undo) error {
			mu.Lock()
			defer mu.Unlock()
			// Each step sees the state with its own booking still there.
			undone = append(undone, u.What)
			return nil
		})
		must(t, saga.Register(app, def, f.store, f.opts(saga.WithRetention(time.Hour))...))
		testenv.StartApp(t, app)
		publish(t, app, TripRequested{TripID: "t-1"})
		eventually(t, 10*time.Second, "trip started", func() bool { return f.instance("trips", "t-1") != nil })
		for _, step := range []string{"flight", "hotel", "car"} {
			// One at a time, so the registration order is known.
			publish(t, app, TripStep{TripID: "t-1", Step: step})
			eventually(t, 10*time.Second, step+" booked", func() bool {
				in := f.instance("trips", "t-1")
				if in == nil || len(in.Meta.Compensations) < 2 {
					return false
				}
				last := in.Meta.Compensations[len(in.Meta.Compensations)-1]
				var u Undo
				return last.Type == "test.trip.undo" && jsonUnmarshal(last.Payload, &u) == nil && u.What == step
			})
		}
		publish(t, app, TripStep{TripID: "t-1", Step: "fail"})
		eventually(t, 10*time.Second, "t-1 compensated", func() bool {
			in := f.instance("trips", "t-1")
			return in != nil && in.Status == saga.Failed && notified.len() == 1
		})
		mu.Lock()
		defer mu.Unlock()
		if want := []string{"car", "hotel", "flight"}; !slices.Equal(undone, want) {
			t.Fatalf("compensations ran in order %v, want %v", undone, want)
		}
		in := f.instance("trips", "t-1")
		if in.Meta.Failure != "no car available" {
			t.Fatalf("failure = %q", in.Meta.Failure)
		}
		_, envs := notified.all()
		if envs[0].Metadata.Get(router.KeySagaKey) != "t-1" {
			t.Fatalf("the forwarded compensation lacks the saga key: %v", envs[0].Metadata)
		}
	})
}

func TestFailingCompensationIsRetriedThenDeadLettered(t *testing.T) {
	backends(t, func(t *testing.T, f *fixture) {
		app, ps := f.newApp(appConfig{relay: true, scheduler: true})
		var mu sync.Mutex
		calls := 0
		def := tripSaga("trips", func(c *saga.Context[Trip], u Undo) error {
			mu.Lock()
			defer mu.Unlock()
			calls++
			return fmt.Errorf("hotel API down")
		})
		must(t, saga.Register(app, def, f.store, f.opts(saga.WithRetention(time.Hour))...))
		dead := subscribe(t, ps, "hexeract.saga.compensate.dlq")
		testenv.StartApp(t, app)
		publish(t, app, TripRequested{TripID: "t-2"})
		eventually(t, 10*time.Second, "trip started", func() bool { return f.instance("trips", "t-2") != nil })
		publish(t, app, TripStep{TripID: "t-2", Step: "hotel"})
		eventually(t, 10*time.Second, "hotel booked", func() bool {
			in := f.instance("trips", "t-2")
			return in != nil && len(in.Meta.Compensations) == 2
		})
		publish(t, app, TripStep{TripID: "t-2", Step: "fail"})
		var dl = waitMsg(t, dead, 10*time.Second)
		md := dl.Metadata
		if md.Get(router.KeySagaName) != "trips" || md.Get(router.KeySagaKey) != "t-2" ||
			md.Get(router.KeyFaultAttempts) != "3" || !stringsContains(md.Get(router.KeyFaultError), `key "t-2"`) {
			t.Fatalf("dead letter metadata = %v", md)
		}
		mu.Lock()
		if calls != 3 {
			t.Errorf("compensation ran %d times, want 3 (the retry policy's attempts)", calls)
		}
		mu.Unlock()
		// The instance stays compensating at the failed step, so a replay of
		// the dead letter resumes it.
		in := f.instance("trips", "t-2")
		if in.Status != saga.Compensating || len(in.Meta.Compensations) != 2 {
			t.Fatalf("instance after a dead-lettered compensation: %s with %d steps", in.Status, len(in.Meta.Compensations))
		}
	})
}

func waitMsg[T any](t *testing.T, ch <-chan T, within time.Duration) T {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(within):
		t.Fatalf("nothing arrived in %s", within)
		panic("unreachable")
	}
}

func TestUnknownInstance(t *testing.T) {
	for _, tc := range []struct {
		outcome  saga.UnknownOutcome
		dead     bool
		attempts string
	}{
		{saga.UnknownIgnore, false, ""},
		{saga.UnknownDeadLetter, true, "1"},
		{saga.UnknownError, true, "3"},
	} {
		t.Run(tc.outcome.String(), func(t *testing.T) {
			backends(t, func(t *testing.T, f *fixture) {
				app, ps := f.newApp(appConfig{})
				must(t, saga.Register(app, orderSaga("orders", time.Minute), f.store, f.opts(saga.WithUnknownInstance(tc.outcome))...))
				dead := subscribe(t, ps, "test.payment.charged.dlq")
				testenv.StartApp(t, app)
				publish(t, app, PaymentCharged{OrderID: "nobody"})
				if !tc.dead {
					select {
					case m := <-dead:
						t.Fatalf("ignored event was dead-lettered: %v", m.Metadata)
					case <-time.After(300 * time.Millisecond):
					}
				} else {
					m := waitMsg(t, dead, 10*time.Second)
					if m.Metadata.Get(router.KeyFaultAttempts) != tc.attempts || !stringsContains(m.Metadata.Get(router.KeyFaultError), `no running instance with key "nobody"`) {
						t.Fatalf("dead letter metadata = %v", m.Metadata)
					}
				}
				if f.instance("orders", "nobody") != nil {
					t.Fatal("an event that is not a start event created an instance")
				}
			})
		})
	}
}

// Counter: one instance, many events, each adding its number and sending
// one message.

type CounterStarted struct{ ID string }

func (CounterStarted) MessageType() string { return "test.counter.started" }

type Add struct {
	ID string
	N  int
}

func (Add) MessageType() string { return "test.counter.add" }

type Added struct {
	ID string
	N  int
}

func (Added) MessageType() string { return "test.counter.added" }

type Counter struct {
	Starts int
	Count  int
	Seen   []int
}

func counterSaga(calls ...*atomic.Int64) *saga.Definition[Counter] {
	def := saga.Define[Counter]("counter")
	saga.StartedBy(def, func(e CounterStarted) string { return e.ID },
		func(c *saga.Context[Counter], s *Counter, e CounterStarted) error {
			s.Starts++
			return nil
		})
	saga.Handles(def, func(e Add) string { return e.ID },
		func(c *saga.Context[Counter], s *Counter, e Add) error {
			for _, n := range calls {
				n.Add(1)
			}
			// Widen the window between load and save, so that concurrent
			// consumers do collide.
			time.Sleep(200 * time.Microsecond)
			s.Count++
			s.Seen = append(s.Seen, e.N)
			c.Send(Added(e))
			return nil
		})
	return def
}

func TestConcurrentEventsForOneInstanceLoseNoUpdate(t *testing.T) {
	backends(t, func(t *testing.T, f *fixture) {
		const consumers, events = 4, 100
		apps := make([]*hexeract.App, consumers)
		var calls atomic.Int64
		for i := range apps {
			apps[i], _ = f.newApp(appConfig{})
			must(t, saga.Register(apps[i], counterSaga(&calls), f.store, f.opts(saga.WithRetention(time.Hour))...))
			testenv.StartApp(t, apps[i])
		}
		publish(t, apps[0], CounterStarted{ID: "c-1"})
		eventually(t, 10*time.Second, "counter started", func() bool { return f.instance("counter", "c-1") != nil })
		// Each consumer gets a quarter of the events; all four handle them
		// at the same time on the same instance.
		var wg sync.WaitGroup
		for i, app := range apps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := i; n < events; n += consumers {
					if err := app.Publish(context.Background(), Add{ID: "c-1", N: n}); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		eventually(t, 60*time.Second, "all 100 events applied", func() bool {
			return state2(t, f.instance("counter", "c-1")).Count >= events
		})
		time.Sleep(100 * time.Millisecond)
		in := f.instance("counter", "c-1")
		s := state2(t, in)
		slices.Sort(s.Seen)
		if s.Count != events || len(s.Seen) != events || s.Seen[0] != 0 || s.Seen[events-1] != events-1 || slices.Compact(s.Seen)[events-1] != events-1 {
			t.Fatalf("state after %d concurrent events: count %d, seen %v", events, s.Count, s.Seen)
		}
		if in.Version != events+1 {
			t.Fatalf("version = %d, want %d", in.Version, events+1)
		}
		// The history is saved with the state: one entry per committed
		// transition, none from the runs that lost a race.
		if kept, dropped := len(in.Meta.History), in.Meta.HistoryDropped; kept+dropped != events+1 || kept != saga.MaxHistory {
			t.Fatalf("history: %d entries kept and %d dropped, want %d transitions in all and %d kept", kept, dropped, events+1, saga.MaxHistory)
		}
		// Runs beyond one per event are transitions that lost a race and ran
		// again: the consumers did collide.
		t.Logf("%d events applied with %d handler runs (%d lost a race and ran again)", events, calls.Load(), calls.Load()-events)
		if calls.Load() <= events {
			t.Fatalf("no transition lost a race (%d handler runs): the test did not exercise concurrency", calls.Load())
		}
		if f.pg {
			// The history table is trimmed at every MaxHistory-th version:
			// at version 100 the entries of versions up to 50 went.
			if n := f.count(f.tables.store+"_history", ""); n != events+1-saga.MaxHistory {
				t.Fatalf("%d history rows for %d transitions, want %d", n, events+1, events+1-saga.MaxHistory)
			}
			// Exactly one outgoing message per applied event: the messages of
			// transitions that lost a race were rolled back with them.
			if n := f.count(f.tables.outbox, ""); n != events {
				t.Fatalf("outbox holds %d messages, want %d", n, events)
			}
		}
	})
}

func state2(t *testing.T, in *saga.Instance) Counter {
	t.Helper()
	var s Counter
	if in == nil {
		return s
	}
	if err := jsonUnmarshal(in.State, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// Two start events for one key at the same time end with one instance on
// which both ran.
func TestStartRaceEndsWithOneInstance(t *testing.T) {
	backends(t, func(t *testing.T, f *fixture) {
		apps := make([]*hexeract.App, 4)
		for i := range apps {
			apps[i], _ = f.newApp(appConfig{})
			must(t, saga.Register(apps[i], counterSaga(), f.store, f.opts(saga.WithRetention(time.Hour))...))
			testenv.StartApp(t, apps[i])
		}
		for round := range 10 {
			key := fmt.Sprintf("race-%d", round)
			var wg sync.WaitGroup
			for _, app := range apps {
				wg.Add(1)
				go func() { defer wg.Done(); publish(t, app, CounterStarted{ID: key}) }()
			}
			wg.Wait()
			eventually(t, 10*time.Second, key+" started 4 times", func() bool {
				return state2(t, f.instance("counter", key)).Starts == 4
			})
			if in := f.instance("counter", key); in.Version != 4 {
				t.Fatalf("%s: version %d after 4 starts, want 4", key, in.Version)
			}
		}
	})
}

// A handler that returns an error sends nothing, schedules nothing and
// saves nothing.
func TestRolledBackHandlerSendsNothing(t *testing.T) {
	backends(t, func(t *testing.T, f *fixture) {
		app, ps := f.newApp(appConfig{relay: true, scheduler: true})
		sent := record[Added](t, app)
		def := saga.Define[Counter]("failing")
		saga.StartedBy(def, func(e CounterStarted) string { return e.ID },
			func(c *saga.Context[Counter], s *Counter, e CounterStarted) error {
				s.Count = 99
				c.Send(Added{ID: e.ID})
				c.Timeout(10*time.Millisecond, PaymentDue{})
				c.Compensate(Undo{})
				return hexeract.Permanent(errors.New("validation failed"))
			})
		saga.OnTimeout(def, func(c *saga.Context[Counter], s *Counter, t PaymentDue) error { return nil })
		must(t, saga.Register(app, def, f.store, f.opts()...))
		dead := subscribe(t, ps, "test.counter.started.dlq")
		testenv.StartApp(t, app)
		publish(t, app, CounterStarted{ID: "r-1"})
		waitMsg(t, dead, 10*time.Second)
		time.Sleep(200 * time.Millisecond)
		if sent.len() != 0 {
			t.Fatalf("a rolled-back handler sent %d messages", sent.len())
		}
		if f.instance("failing", "r-1") != nil {
			t.Fatal("a rolled-back handler saved an instance")
		}
		if f.pg {
			if n := f.count(f.tables.outbox, "") + f.count(f.tables.outbox+"_delivered", "") + f.count(f.tables.sched, ""); n != 0 {
				t.Fatalf("a rolled-back handler left %d outbox or scheduler rows", n)
			}
		}
	})
}
