// Command order-saga runs an order workflow as a Hexeract saga: it
// reserves stock, charges the payment and ships. A declined payment
// releases the stock (a compensation); a payment that does not answer in
// time cancels the order (a timeout) and releases the stock too.
//
// The saga's state, its outgoing messages (through the transactional
// outbox) and its timeouts (through the durable scheduler) commit in one
// transaction per step, in the App's store (hexeract.WithStore): SQLite in
// a temporary file by default (no service needed), or the database
// $HEXERACT_DATABASE_URL names (postgres://... or mysql://...). The stock,
// payment and shipping services are handlers in the same process, on the
// in-memory transport by default, or on a real broker with -transport URL
// (or $HEXERACT_TRANSPORT): any URL adapters.Open takes, for example
// amqp://guest:guest@127.0.0.1:5672/.
//
//	go run ./examples/order-saga
//	HEXERACT_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable go run ./examples/order-saga
//	HEXERACT_DATABASE_URL=mysql://root@127.0.0.1:3306/test go run ./examples/order-saga
//	go run ./examples/order-saga -transport amqp://guest:guest@127.0.0.1:5672/
//
// Its tables are prefixed order_saga_ (sagas, outbox, scheduled, ...). It
// exits 0 once the three orders have reached their outcome.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/saga"
	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/mysql"
	"github.com/hexeract/hexeract/store/postgres"
	"github.com/hexeract/hexeract/store/sqlite"
	"github.com/hexeract/hexeract/store/storeurl"
)

// Events and commands of the order workflow.

type OrderPlaced struct {
	OrderID string `json:"order_id"`
	Amount  int    `json:"amount"` // cents
}

func (OrderPlaced) MessageType() string { return "orders.placed" }

type ReserveStock struct {
	OrderID string `json:"order_id"`
}

func (ReserveStock) MessageType() string { return "stock.reserve" }

type StockReserved struct {
	OrderID string `json:"order_id"`
}

func (StockReserved) MessageType() string { return "stock.reserved" }

type ReleaseStock struct {
	OrderID string `json:"order_id"`
}

func (ReleaseStock) MessageType() string { return "stock.release" }

type ChargePayment struct {
	OrderID string `json:"order_id"`
	Amount  int    `json:"amount"`
}

func (ChargePayment) MessageType() string { return "payments.charge" }

type PaymentCharged struct {
	OrderID string `json:"order_id"`
}

func (PaymentCharged) MessageType() string { return "payments.charged" }

type PaymentDeclined struct {
	OrderID string `json:"order_id"`
	Reason  string `json:"reason"`
}

func (PaymentDeclined) MessageType() string { return "payments.declined" }

type ShipOrder struct {
	OrderID string `json:"order_id"`
}

func (ShipOrder) MessageType() string { return "shipping.ship" }

type OrderShipped struct {
	OrderID string `json:"order_id"`
}

func (OrderShipped) MessageType() string { return "shipping.shipped" }

type OrderCancelled struct {
	OrderID string `json:"order_id"`
	Reason  string `json:"reason"`
}

func (OrderCancelled) MessageType() string { return "orders.cancelled" }

// PaymentTimeout is the saga's payment deadline.
type PaymentTimeout struct {
	OrderID string `json:"order_id"`
}

func (PaymentTimeout) MessageType() string { return "orders.payment_timeout" }

// Order is the saga's state.
type Order struct {
	ID       string `json:"id"`
	Amount   int    `json:"amount"`
	Reserved bool   `json:"reserved"`
	Paid     bool   `json:"paid"`
}

// paymentDeadline is how long the saga waits for the payment.
const paymentDeadline = 2 * time.Second

// orderSaga is the workflow.
func orderSaga() *saga.Definition[Order] {
	def := saga.Define[Order]("orders")

	saga.StartedBy(def, func(e OrderPlaced) string { return e.OrderID },
		func(c *saga.Context[Order], o *Order, e OrderPlaced) error {
			o.ID, o.Amount = e.OrderID, e.Amount
			c.Send(ReserveStock{OrderID: o.ID})
			c.Timeout(paymentDeadline, PaymentTimeout{OrderID: o.ID})
			return nil
		})

	saga.Handles(def, func(e StockReserved) string { return e.OrderID },
		func(c *saga.Context[Order], o *Order, e StockReserved) error {
			o.Reserved = true
			c.Compensate(ReleaseStock{OrderID: o.ID}) // undone if a later step fails
			c.Send(ChargePayment{OrderID: o.ID, Amount: o.Amount})
			return nil
		})

	saga.Handles(def, func(e PaymentCharged) string { return e.OrderID },
		func(c *saga.Context[Order], o *Order, e PaymentCharged) error {
			o.Paid = true
			c.CancelTimeout(PaymentTimeout{})
			c.Send(ShipOrder{OrderID: o.ID})
			return nil
		})

	saga.Handles(def, func(e PaymentDeclined) string { return e.OrderID },
		func(c *saga.Context[Order], o *Order, e PaymentDeclined) error {
			c.Send(OrderCancelled{OrderID: o.ID, Reason: "payment declined: " + e.Reason})
			c.Fail(errors.New(e.Reason)) // runs the compensations: ReleaseStock
			return nil
		})

	saga.Handles(def, func(e OrderShipped) string { return e.OrderID },
		func(c *saga.Context[Order], o *Order, e OrderShipped) error {
			c.Complete() // cancels the payment deadline; the instance is deleted
			return nil
		})

	saga.OnTimeout(def, func(c *saga.Context[Order], o *Order, t PaymentTimeout) error {
		c.Send(OrderCancelled{OrderID: o.ID, Reason: "no payment within " + paymentDeadline.String()})
		c.Fail(errors.New("payment timeout"))
		return nil
	})
	return def
}

func main() {
	transportURL := flag.String("transport", os.Getenv(adapters.EnvTransport),
		"transport URL (default $"+adapters.EnvTransport+", else mem:// in memory)")
	flag.Parse()
	if err := run(*transportURL); err != nil {
		log.Fatal(err)
	}
}

// run places three orders on the transport transportURL names ("" for the
// in-memory one) and waits for their outcomes.
func run(transportURL string) error {
	if transportURL == "" {
		transportURL = "mem://"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// Persistence: the database $HEXERACT_DATABASE_URL names, or SQLite in
	// a temporary file. The App's store holds the saga instances, the
	// outbox their messages go through and the scheduler their timeouts go
	// through; its relay and scheduler run as workers of the App.
	st, withStore, closeStore, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer closeStore()

	// The transport: in memory by default; any URL adapters.Open takes.
	transport, err := adapters.Open(ctx, transportURL)
	if err != nil {
		return err
	}
	defer func() {
		if err := transport.Close(); err != nil {
			log.Printf("close the transport: %v", err)
		}
	}()
	app, err := hexeract.New(hexeract.WithPubSub(transport.Publisher, transport.Subscriber), hexeract.WithLogger(logger),
		hexeract.WithSource("/order-saga"), withStore)
	if err != nil {
		return err
	}
	defer func() {
		if err := app.Close(); err != nil {
			log.Printf("close the App: %v", err)
		}
	}()

	// A nil store: the saga keeps its instances in the App's store (table
	// order_saga_sagas) and sends and schedules through the App's outbox
	// and scheduler, in the transaction of each step.
	if err := saga.Register(app, orderSaga(), nil); err != nil {
		return err
	}
	// Like every constructor, New did not touch the database: create or
	// update the tables (what "hexeract migrate up" does).
	if err := app.Migrate(ctx); err != nil {
		return err
	}
	instances, err := saga.NewSQLStore(st, saga.WithTable(app.StoreTable("sagas")))
	if err != nil {
		return err
	}
	outcomes, err := services(app)
	if err != nil {
		return err
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runErr := make(chan error, 1)
	go func() { runErr <- app.Run(runCtx) }()
	select {
	case <-app.Running():
	case err := <-runErr:
		return err
	}

	run := router.NewID()[24:] // order ids unique to this run
	orders := []OrderPlaced{
		{OrderID: "ok-" + run, Amount: 2500},          // paid and shipped
		{OrderID: "declined-" + run, Amount: 250_000}, // the payment is declined
		{OrderID: "slow-" + run, Amount: 1313},        // the payment never answers
	}
	for _, o := range orders {
		fmt.Printf("placing order %s (%d cents)\n", o.OrderID, o.Amount)
	}
	if err := app.Publish(ctx, orders[0], orders[1], orders[2]); err != nil {
		return err
	}
	if err := outcomes.wait(ctx, len(orders)); err != nil {
		return err
	}
	// Each instance is deleted once it completed (shipped) or finished its
	// compensations (no retention is configured).
	for _, o := range orders {
		for {
			_, err := instances.Get(ctx, "orders", o.OrderID)
			if errors.Is(err, saga.ErrNotFound) {
				break
			}
			if err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("order %s did not finish: %w", o.OrderID, ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	stop()
	if err := <-runErr; err != nil {
		return err
	}
	fmt.Printf("outcomes (saga store on %s):\n", st.Dialect())
	for _, line := range outcomes.lines() {
		fmt.Println("  " + line)
	}
	return nil
}

// openStore opens the database $HEXERACT_DATABASE_URL names (postgres://
// or mysql://), or SQLite in a temporary file when it is unset, and returns
// it with the App option that gives it to the App (tables prefixed
// "order_saga_") and a function that closes it.
func openStore(ctx context.Context) (store.Store, hexeract.Option, func(), error) {
	url := os.Getenv("HEXERACT_DATABASE_URL")
	prefix := hexeract.WithTablePrefix("order_saga_")
	switch storeurl.Dialect(url) {
	case store.Postgres:
		d, err := postgres.Open(ctx, url)
		if err != nil {
			return nil, nil, nil, err
		}
		return d, hexeract.WithStore(d, prefix), func() { _ = d.Close() }, nil
	case store.MySQL:
		d, err := mysql.Open(ctx, url)
		if err != nil {
			return nil, nil, nil, err
		}
		return d, hexeract.WithStore(d, prefix), func() { _ = d.Close() }, nil
	case store.SQLite:
	case "":
		dir, err := os.MkdirTemp("", "hexeract-order-saga-")
		if err != nil {
			return nil, nil, nil, err
		}
		d, err := sqlite.Open(ctx, "sqlite://"+filepath.Join(dir, "order-saga.db"))
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, nil, nil, err
		}
		return d, hexeract.WithStore(d, prefix), func() { _ = d.Close(); _ = os.RemoveAll(dir) }, nil
	default:
		return nil, nil, nil, errors.New("HEXERACT_DATABASE_URL: unknown scheme (use postgres://, mysql:// or sqlite:///path.db)")
	}
	d, err := sqlite.Open(ctx, url)
	if err != nil {
		return nil, nil, nil, err
	}
	return d, hexeract.WithStore(d, prefix), func() { _ = d.Close() }, nil
}

// outcomeLog records how each order ended: shipped, or cancelled with its
// stock released.
type outcomeLog struct {
	mu        sync.Mutex
	shipped   map[string]bool
	cancelled map[string]string
	released  map[string]bool
	changed   chan struct{}
}

func (l *outcomeLog) note(f func()) {
	l.mu.Lock()
	f()
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

func (l *outcomeLog) done() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.shipped)
	for id := range l.cancelled {
		if l.released[id] {
			n++
		}
	}
	return n
}

func (l *outcomeLog) wait(ctx context.Context, n int) error {
	for l.done() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("orders did not finish: %w", ctx.Err())
		case <-l.changed:
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

func (l *outcomeLog) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for id := range l.shipped {
		out = append(out, id+": shipped")
	}
	for id, reason := range l.cancelled {
		out = append(out, fmt.Sprintf("%s: cancelled (%s), stock released: %v", id, reason, l.released[id]))
	}
	sort.Strings(out)
	return out
}

// services adds the stock, payment and shipping services. The payment
// service declines amounts over 1000.00 and never answers for 13.13.
func services(app *hexeract.App) (*outcomeLog, error) {
	l := &outcomeLog{shipped: map[string]bool{}, cancelled: map[string]string{}, released: map[string]bool{}, changed: make(chan struct{}, 1)}
	errs := []error{
		hexeract.HandleFunc(app, func(ctx context.Context, m ReserveStock) error {
			fmt.Println("stock:    reserved for", m.OrderID)
			return app.Publish(ctx, StockReserved(m))
		}),
		hexeract.HandleFunc(app, func(ctx context.Context, m ReleaseStock) error {
			fmt.Println("stock:    released for", m.OrderID)
			l.note(func() { l.released[m.OrderID] = true })
			return nil
		}),
		hexeract.HandleFunc(app, func(ctx context.Context, m ChargePayment) error {
			switch {
			case m.Amount == 1313:
				fmt.Println("payment:  no answer for", m.OrderID)
				return nil
			case m.Amount > 100_000:
				fmt.Println("payment:  declined for", m.OrderID)
				return app.Publish(ctx, PaymentDeclined{OrderID: m.OrderID, Reason: "insufficient funds"})
			}
			fmt.Println("payment:  charged for", m.OrderID)
			return app.Publish(ctx, PaymentCharged{OrderID: m.OrderID})
		}),
		hexeract.HandleFunc(app, func(ctx context.Context, m ShipOrder) error {
			fmt.Println("shipping: shipped", m.OrderID)
			l.note(func() { l.shipped[m.OrderID] = true })
			return app.Publish(ctx, OrderShipped(m))
		}),
		hexeract.HandleFunc(app, func(ctx context.Context, m OrderCancelled) error {
			fmt.Printf("orders:   %s cancelled: %s\n", m.OrderID, m.Reason)
			l.note(func() { l.cancelled[m.OrderID] = m.Reason })
			return nil
		}),
	}
	return l, errors.Join(errs...)
}
