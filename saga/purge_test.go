package saga_test

import (
	"context"
	"testing"
	"time"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/saga"
)

func TestRetentionKeepsThenPurgeDeletes(t *testing.T) {
	backends(t, func(t *testing.T, f *fixture) {
		app, _ := f.newApp(appConfig{relay: true, scheduler: true})
		services(t, app)
		must(t, saga.Register(app, orderSaga("orders", time.Minute), f.store, f.opts(saga.WithRetention(time.Hour))...))
		testenv.StartApp(t, app)
		publish(t, app, OrderPlaced{OrderID: "p-1", Amount: 1}, OrderPlaced{OrderID: "p-2", Amount: 13})
		eventually(t, 10*time.Second, "p-1 completed", func() bool {
			in := f.instance("orders", "p-1")
			return in != nil && in.Status == saga.Completed
		})
		// p-2 is handled concurrently and may start after p-1 completed.
		eventually(t, 10*time.Second, "p-2 started", func() bool { return f.instance("orders", "p-2") != nil })
		ctx := context.Background()
		done, err := f.store.List(ctx, saga.Filter{Saga: "orders", Status: saga.Completed})
		must(t, err)
		all, err := f.store.List(ctx, saga.Filter{})
		must(t, err)
		if len(done) != 1 || done[0].Key != "p-1" || len(all) != 2 {
			t.Fatalf("List completed = %d instances, all = %d", len(done), len(all))
		}
		if n, err := f.store.Purge(ctx, done[0].CompletedAt.Add(-time.Second)); err != nil || n != 0 {
			t.Fatalf("Purge before completion deleted %d (%v)", n, err)
		}
		purger, err := saga.Purger(f.store, time.Nanosecond, time.Hour, quietLogger())
		must(t, err)
		pctx, cancel := context.WithCancel(ctx)
		go func() { _ = purger.Run(pctx) }()
		eventually(t, 5*time.Second, "the purger deleted p-1", func() bool { return f.instance("orders", "p-1") == nil })
		cancel()
		if in := f.instance("orders", "p-2"); in == nil || in.Status != saga.Running {
			t.Fatalf("the purger touched the running p-2: %+v", in)
		}
	})
}
