package saga_test

import (
	"errors"
	"testing"
	"time"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/saga"
)

// Refund is a compensation for another service that keeps per-account
// order (router.Keyed).
type Refund struct{ Account string }

func (Refund) MessageType() string   { return "test.account.refund" }
func (r Refund) OrderingKey() string { return r.Account }

type Debit struct{ Account string }

func (Debit) MessageType() string   { return "test.account.debit" }
func (d Debit) OrderingKey() string { return d.Account }

// A compensation forwarded to another service keeps the ordering key of its
// type, like the same message sent with Send: on a partitioned transport the
// refund stays behind the debit of the same account.
func TestForwardedCompensationKeepsItsOrderingKey(t *testing.T) {
	backends(t, func(t *testing.T, f *fixture) {
		app, _ := f.newApp(appConfig{relay: true})
		debits, refunds := record[Debit](t, app), record[Refund](t, app)
		def := saga.Define[Trip]("accounts")
		saga.StartedBy(def, func(e TripRequested) string { return e.TripID },
			func(c *saga.Context[Trip], s *Trip, e TripRequested) error {
				c.Send(Debit{Account: "acc-" + e.TripID})
				c.Compensate(Refund{Account: "acc-" + e.TripID})
				return nil
			})
		saga.Handles(def, func(e TripStep) string { return e.TripID },
			func(c *saga.Context[Trip], s *Trip, e TripStep) error {
				c.Fail(errors.New("stop"))
				return nil
			})
		must(t, saga.Register(app, def, f.store, f.opts()...))
		testenv.StartApp(t, app)
		publish(t, app, TripRequested{TripID: "k-1"})
		eventually(t, 10*time.Second, "debited", func() bool { return debits.len() == 1 })
		publish(t, app, TripStep{TripID: "k-1"})
		eventually(t, 10*time.Second, "refunded", func() bool { return refunds.len() == 1 })
		_, d := debits.all()
		_, r := refunds.all()
		if got, want := r[0].Metadata.Get(router.KeyPartitionKey), d[0].Metadata.Get(router.KeyPartitionKey); want != "acc-k-1" || got != want {
			t.Fatalf("forwarded compensation has partition key %q, the sent message %q; want both acc-k-1", got, want)
		}
	})
}
