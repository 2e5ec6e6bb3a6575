package saga_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/saga"
)

// TestFailedSagaKeepsItsHistory checks that a failed instance records which
// events, and which compensations, ran, in order, on both stores.
func TestFailedSagaKeepsItsHistory(t *testing.T) {
	backends(t, func(t *testing.T, f *fixture) {
		app, _ := f.newApp(appConfig{relay: true, scheduler: true})
		record[NotifyCustomer](t, app)
		def := tripSaga("trips", func(*saga.Context[Trip], Undo) error { return nil })
		must(t, saga.Register(app, def, f.store, f.opts(saga.WithRetention(time.Hour))...))
		testenv.StartApp(t, app)
		publish(t, app, TripRequested{TripID: "t-h"})
		eventually(t, 10*time.Second, "trip started", func() bool { return f.instance("trips", "t-h") != nil })
		for i, step := range []string{"flight", "hotel"} {
			publish(t, app, TripStep{TripID: "t-h", Step: step})
			eventually(t, 10*time.Second, step+" booked", func() bool {
				in := f.instance("trips", "t-h")
				return in != nil && len(in.Meta.Compensations) == i+2
			})
		}
		publish(t, app, TripStep{TripID: "t-h", Step: "fail"})
		eventually(t, 10*time.Second, "t-h failed", func() bool {
			in := f.instance("trips", "t-h")
			return in != nil && in.Status == saga.Failed
		})
		in := f.instance("trips", "t-h")
		var got []string
		for _, e := range in.Meta.History {
			if e.At.IsZero() {
				t.Errorf("history entry without a time: %+v", e)
			}
			got = append(got, fmt.Sprintf("%s %s %s %s", e.Kind, e.Type, e.Status, e.Note))
		}
		want := []string{
			"event test.trip.requested running ",
			"event test.trip.step running ",
			"event test.trip.step running ",
			"event test.trip.step compensating failed: no car available; 3 compensation(s) to run",
			"compensation test.trip.undo compensating ",
			"compensation test.trip.undo compensating ",
			"compensation test.trip.notify failed ",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("history:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

// TestHistoryKeepsTheLastEntries checks that a long-lived instance keeps
// only the last MaxHistory transitions and counts the dropped ones.
func TestHistoryKeepsTheLastEntries(t *testing.T) {
	f := newFixture(t, false)
	app, _ := f.newApp(appConfig{})
	record[Added](t, app)
	must(t, saga.Register(app, counterSaga(), f.store, f.opts()...))
	testenv.StartApp(t, app)
	publish(t, app, CounterStarted{ID: "c-h"})
	const events = saga.MaxHistory + 9
	eventually(t, 10*time.Second, "the counter started", func() bool { return f.instance("counter", "c-h") != nil })
	for i := range events {
		// One at a time: concurrent events for one instance may conflict
		// until retries run out, which is not what this test is about.
		publish(t, app, Add{ID: "c-h", N: i})
		eventually(t, 10*time.Second, fmt.Sprintf("event %d counted", i), func() bool {
			return state2(t, f.instance("counter", "c-h")).Count == i+1
		})
	}
	in := f.instance("counter", "c-h")
	if len(in.Meta.History) != saga.MaxHistory || in.Meta.HistoryDropped != events+1-saga.MaxHistory {
		t.Fatalf("history holds %d entries and %d dropped, want %d and %d", len(in.Meta.History), in.Meta.HistoryDropped, saga.MaxHistory, events+1-saga.MaxHistory)
	}
	if last := in.Meta.History[len(in.Meta.History)-1]; last.Type != "test.counter.add" || last.Kind != saga.HistoryEvent {
		t.Fatalf("last entry = %+v", last)
	}
}

// TestPostgresHistoryGoesWithTheInstance checks that the PostgreSQL store's
// history rows are deleted with their instance, whether it is deleted by a
// transition (finished without retention) or purged.
func TestPostgresHistoryGoesWithTheInstance(t *testing.T) {
	f := newFixture(t, true)
	ctx := t.Context()
	store := f.store.(*saga.SQLStore)
	entry := func(typ string, st saga.Status) []saga.HistoryEntry {
		return []saga.HistoryEntry{{At: time.Now(), Kind: saga.HistoryEvent, Type: typ, Status: st}}
	}
	save := func(op func(tx saga.Tx) error) {
		t.Helper()
		tx, err := store.Begin(ctx)
		must(t, err)
		must(t, op(tx))
		must(t, tx.Commit(ctx))
	}
	for _, key := range []string{"deleted", "purged"} {
		save(func(tx saga.Tx) error {
			return tx.Insert(ctx, &saga.Instance{Saga: "h", Key: key, Status: saga.Running, State: []byte(`{}`), Meta: saga.Meta{History: entry("a", saga.Running)}})
		})
		save(func(tx saga.Tx) error {
			in, err := tx.Load(ctx, "h", key)
			if err != nil {
				return err
			}
			if len(in.Meta.History) != 0 {
				t.Errorf("Load returned %d history entries, want none", len(in.Meta.History))
			}
			in.Status, in.CompletedAt, in.Meta.History = saga.Completed, time.Now().Add(-time.Hour), entry("b", saga.Completed)
			return tx.Update(ctx, in)
		})
		in, err := store.Get(ctx, "h", key)
		must(t, err)
		if len(in.Meta.History) != 2 || in.Meta.History[0].Type != "a" || in.Meta.History[1].Type != "b" || in.Meta.HistoryDropped != 0 {
			t.Fatalf("%s: history = %+v, dropped %d", key, in.Meta.History, in.Meta.HistoryDropped)
		}
	}
	save(func(tx saga.Tx) error {
		in, err := tx.Load(ctx, "h", "deleted")
		if err != nil {
			return err
		}
		return tx.Delete(ctx, in)
	})
	rows := func(key string) int { return f.count(store.Table()+"_history", "WHERE saga = 'h' AND key = $1", key) }
	if n := rows("deleted"); n != 0 {
		t.Errorf("%d history rows left after the instance was deleted", n)
	}
	if n := rows("purged"); n != 2 {
		t.Fatalf("%d history rows for the kept instance, want 2", n)
	}
	n, err := store.Purge(ctx, time.Now())
	must(t, err)
	if n != 1 || rows("purged") != 0 {
		t.Errorf("Purge deleted %d instances and left %d history rows; want 1 and 0", n, rows("purged"))
	}
}

// TestLateReplyToFailedSaga checks what docs/sagas.md says of a reply that
// arrives after its saga failed (the instance kept with retention): it is
// an event for an unknown instance, dead-lettered by default, dropped with
// UnknownIgnore; the failed instance is left as it was either way.
func TestLateReplyToFailedSaga(t *testing.T) {
	for _, tc := range []struct {
		outcome saga.UnknownOutcome
		dead    bool
	}{
		{saga.UnknownDeadLetter, true},
		{saga.UnknownIgnore, false},
	} {
		t.Run(tc.outcome.String(), func(t *testing.T) {
			backends(t, func(t *testing.T, f *fixture) {
				app, ps := f.newApp(appConfig{relay: true, scheduler: true})
				released, _ := services(t, app)
				must(t, saga.Register(app, orderSaga("orders", time.Minute), f.store,
					f.opts(saga.WithRetention(time.Hour), saga.WithUnknownInstance(tc.outcome))...))
				dead := subscribe(t, ps, "test.payment.charged.dlq")
				testenv.StartApp(t, app)
				publish(t, app, OrderPlaced{OrderID: "late", Amount: 500}) // the payment is declined
				eventually(t, 10*time.Second, "the saga failed and compensated", func() bool {
					in := f.instance("orders", "late")
					return in != nil && in.Status == saga.Failed && released.len() == 1
				})
				before := f.instance("orders", "late")
				publish(t, app, PaymentCharged{OrderID: "late"}) // the late reply
				if tc.dead {
					m := waitMsg(t, dead, 10*time.Second)
					if !strings.Contains(m.Metadata.Get(router.KeyFaultError), `no running instance with key "late"`) {
						t.Fatalf("dead letter fault = %q", m.Metadata.Get(router.KeyFaultError))
					}
				} else {
					select {
					case m := <-dead:
						t.Fatalf("the ignored late reply was dead-lettered: %v", m.Metadata)
					case <-time.After(300 * time.Millisecond):
					}
				}
				after := f.instance("orders", "late")
				if after.Status != saga.Failed || after.Version != before.Version {
					t.Fatalf("the late reply changed the failed instance: status %s version %d -> %d", after.Status, before.Version, after.Version)
				}
			})
		})
	}
}
