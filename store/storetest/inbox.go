package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/store"
)

// RunInbox runs the inbox conformance tests: ten deliveries of one message,
// concurrent or not, apply its effect once; a failed handler commits
// nothing, so the next delivery runs it.
func RunInbox[TTx any](t *testing.T, h Harness[TTx]) {
	t.Run("EffectOnceForTenDeliveries", func(t *testing.T) { t.Parallel(); testInboxOnce(t, h) })
	t.Run("FailedHandlerCommitsNothing", func(t *testing.T) { t.Parallel(); testInboxRollback(t, h) })
}

func newInbox[TTx any](t testing.TB, d store.Driver[TTx]) *outbox.Inbox[TTx] {
	t.Helper()
	in, err := outbox.NewInbox(d, outbox.WithInboxTable("storetest_inbox"))
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return in
}

func effects[TTx any](t testing.TB, h Harness[TTx], d store.Driver[TTx]) (n func() int64) {
	t.Helper()
	ctx := context.Background()
	if err := d.InTx(ctx, func(ctx context.Context, tx TTx) error {
		if err := h.Exec(ctx, tx, "CREATE TABLE storetest_effects (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"); err != nil {
			return err
		}
		return h.Exec(ctx, tx, "INSERT INTO storetest_effects (id, n) VALUES (1, 0)")
	}); err != nil {
		t.Fatal(err)
	}
	return func() int64 {
		var n int64
		if err := d.InTx(ctx, func(ctx context.Context, tx TTx) error {
			var err error
			n, err = h.QueryInt(ctx, tx, "SELECT n FROM storetest_effects WHERE id = 1")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
}

func testInboxOnce[TTx any](t *testing.T, h Harness[TTx]) {
	url := h.URL(t)
	d := h.Open(t, url)
	in := newInbox(t, d)
	count := effects(t, h, d)
	// Eight concurrent deliveries (two processes), then two late ones.
	d2 := h.Open(t, url)
	in2 := newInbox(t, d2)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ran := 0
	deliver := func(in *outbox.Inbox[TTx]) {
		r, err := in.Process(context.Background(), "storetest", "msg-1", func(ctx context.Context, tx TTx) error {
			if _, ok := in.Tx(ctx); !ok {
				return errors.New("no transaction in the handler's context")
			}
			return h.Exec(ctx, tx, "UPDATE storetest_effects SET n = n + 1 WHERE id = 1")
		})
		if err != nil {
			t.Error(err)
		}
		if r {
			mu.Lock()
			ran++
			mu.Unlock()
		}
	}
	for i := range 8 {
		wg.Go(func() { deliver([]*outbox.Inbox[TTx]{in, in2}[i%2]) })
	}
	wg.Wait()
	deliver(in)
	deliver(in2)
	if n := count(); n != 1 || ran != 1 {
		t.Fatalf("effect applied %d times, handler ran %d times for 10 deliveries; want 1 and 1", n, ran)
	}
	if n, err := in.Cleanup(context.Background()); err != nil || n != 0 {
		t.Fatalf("Cleanup = %d, %v; want nothing young removed", n, err)
	}
}

func testInboxRollback[TTx any](t *testing.T, h Harness[TTx]) {
	d := h.OpenFresh(t)
	in := newInbox(t, d)
	count := effects(t, h, d)
	boom := errors.New("handler failed")
	_, err := in.Process(context.Background(), "storetest", "msg-2", func(ctx context.Context, tx TTx) error {
		if err := h.Exec(ctx, tx, "UPDATE storetest_effects SET n = n + 1 WHERE id = 1"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Process = %v, want the handler's error", err)
	}
	ran, err := in.Process(context.Background(), "storetest", "msg-2", func(ctx context.Context, tx TTx) error {
		return h.Exec(ctx, tx, "UPDATE storetest_effects SET n = n + 1 WHERE id = 1")
	})
	if err != nil || !ran {
		t.Fatalf("redelivery after a failure: ran %v, %v; want it to run", ran, err)
	}
	if n := count(); n != 1 {
		t.Fatalf("effect = %d, want 1", n)
	}
}
