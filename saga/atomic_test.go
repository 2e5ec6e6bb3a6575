package saga_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/saga"
)

// A process that committed transitions but died before its relay delivered
// their messages loses none of them: the next process's relay delivers every
// one.
func TestCrashBetweenStateSaveAndRelayLosesNoMessage(t *testing.T) {
	f := newFixture(t, true)
	const orders = 50

	// Process 1: handles the orders; its relay never runs (it "crashes"
	// after the commits).
	app1, _ := f.newApp(appConfig{})
	must(t, saga.Register(app1, orderSaga("orders", time.Hour), f.store, f.opts()...))
	stop1 := testenv.StartApp(t, app1)
	for i := range orders {
		publish(t, app1, OrderPlaced{OrderID: fmt.Sprintf("crash-%d", i), Amount: 1})
	}
	eventually(t, 20*time.Second, "all orders saved", func() bool {
		return f.count(f.tables.store, "WHERE saga = 'orders'") == orders
	})
	stop1()
	if n := f.count(f.tables.outbox, ""); n != orders {
		t.Fatalf("outbox holds %d messages after the crash, want %d (one ReserveStock per saved order)", n, orders)
	}

	// Process 2: its relay delivers what process 1 committed.
	app2, _ := f.newApp(appConfig{relay: true})
	reserve := record[ReserveStock](t, app2)
	testenv.StartApp(t, app2)
	eventually(t, 20*time.Second, "every ReserveStock delivered", func() bool { return reserve.len() >= orders })
	time.Sleep(200 * time.Millisecond)
	msgs, envs := reserve.all()
	seen := map[string]bool{}
	for i, m := range msgs {
		if seen[m.OrderID] {
			t.Fatalf("%s delivered twice", m.OrderID)
		}
		seen[m.OrderID] = true
		if envs[i].Metadata.Get(router.KeySagaKey) != m.OrderID {
			t.Fatalf("ReserveStock for %s carries saga key %q", m.OrderID, envs[i].Metadata.Get(router.KeySagaKey))
		}
	}
	for i := range orders {
		if !seen[fmt.Sprintf("crash-%d", i)] {
			t.Fatalf("crash-%d was saved but its ReserveStock was lost", i)
		}
	}
}

// When the transaction fails after the handler wrote its messages and its
// own rows (here: another transition committed first, so the optimistic
// save fails), none of it happened; the redelivered message then applies
// once.
func TestFailedTransactionWritesNeitherStateNorMessages(t *testing.T) {
	backends(t, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		business := "saga_business_" + f.tables.store
		if f.pg {
			if _, err := f.pool.Exec(ctx, `CREATE TABLE `+business+` (n int)`); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _, _ = f.pool.Exec(context.Background(), `DROP TABLE `+business) })
		}
		app, _ := f.newApp(appConfig{})
		added := record[Added](t, app)
		var interfere atomic.Bool
		def := saga.Define[Counter]("counter")
		saga.StartedBy(def, func(e CounterStarted) string { return e.ID },
			func(c *saga.Context[Counter], s *Counter, e CounterStarted) error { return nil })
		saga.Handles(def, func(e Add) string { return e.ID },
			func(c *saga.Context[Counter], s *Counter, e Add) error {
				s.Count++
				c.Send(Added(e))
				if tx, ok := saga.TxOf(c, f.drv); ok {
					if _, err := tx.Exec(c, `INSERT INTO `+business+` (n) VALUES ($1)`, e.N); err != nil {
						return err
					}
				}
				if interfere.CompareAndSwap(true, false) {
					// Another transition of the same instance commits now.
					bumpVersion(t, f.store, "counter", e.ID)
				}
				return nil
			})
		must(t, saga.Register(app, def, f.store, f.opts(saga.WithConflictRetries(0))...))
		testenv.StartApp(t, app)
		publish(t, app, CounterStarted{ID: "a-1"})
		eventually(t, 10*time.Second, "started", func() bool { return f.instance("counter", "a-1") != nil })
		interfere.Store(true)
		publish(t, app, Add{ID: "a-1", N: 7})
		eventually(t, 10*time.Second, "the event applied", func() bool { return state2(t, f.instance("counter", "a-1")).Count == 1 })
		time.Sleep(200 * time.Millisecond)
		if in := f.instance("counter", "a-1"); in.Version != 3 { // start, bump, the event
			t.Fatalf("version = %d, want 3", in.Version)
		}
		if interfere.Load() {
			t.Fatal("the interfering transition never ran")
		}
		if f.pg {
			if n := f.count(f.tables.outbox, ""); n != 1 {
				t.Fatalf("outbox holds %d messages, want 1: the failed attempt's message must be gone", n)
			}
			if n := f.count(business, ""); n != 1 {
				t.Fatalf("business table holds %d rows, want 1: the failed attempt's row must be gone", n)
			}
		} else if added.len() != 1 {
			t.Fatalf("%d messages published, want 1: the failed attempt published", added.len())
		}
	})
}

// bumpVersion saves the instance unchanged in a unit of work of its own.
func bumpVersion(t *testing.T, store saga.Store, name, key string) {
	ctx := context.Background()
	tx, err := store.Begin(ctx)
	if err != nil {
		t.Error(err)
		return
	}
	defer func() { _ = tx.Rollback(ctx) }()
	in, err := tx.Load(ctx, name, key)
	if err == nil {
		err = tx.Update(ctx, in)
	}
	if err == nil {
		err = tx.Commit(ctx)
	}
	if err != nil {
		t.Error(err)
	}
}
