package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/store/postgres"
)

func newInbox(t testing.TB, pool *pgxpool.Pool) (*outbox.Inbox[pgx.Tx], string) {
	t.Helper()
	table := "inbox_test_" + testenv.Suffix()
	in, err := outbox.NewInbox(postgres.New(pool), outbox.WithInboxTable(table))
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+table)
		_, _ = pool.Exec(context.Background(), `DELETE FROM hexeract_schema_migrations WHERE component = $1`, "inbox:"+table)
	})
	return in, table
}

func TestInboxRunsDuplicateMessageEffectOnce(t *testing.T) {
	pool := testenv.Postgres(t)
	ctx := context.Background()
	in, _ := newInbox(t, pool)
	_, ob, outTable := newOutbox(t)
	balances := "balances_" + testenv.Suffix()
	if _, err := pool.Exec(ctx, `CREATE TABLE `+balances+` (account text PRIMARY KEY, amount int NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = pool.Exec(ctx, `DROP TABLE `+balances) })

	calls := 0
	var mu sync.Mutex
	handler := func(msg *message.Message) ([]*message.Message, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		tx, ok := in.Tx(msg.Context())
		if !ok {
			return nil, errors.New("no tx in the handler's context")
		}
		if _, err := tx.Exec(msg.Context(), `INSERT INTO `+balances+` VALUES ('a', 10)
ON CONFLICT (account) DO UPDATE SET amount = `+balances+`.amount + 10`); err != nil {
			return nil, err
		}
		// A follow-up message goes through the outbox in the same transaction.
		_, err := ob.Publish(msg.Context(), tx, UserRegistered{UserID: "follow-up"})
		return nil, err
	}
	h := in.Middleware("billing")(handler)

	wm, err := router.NewMessage(ctx, UserRegistered{UserID: "1"}, router.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Eight concurrent deliveries plus two late redeliveries of one message.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := h(wm.Copy()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for range 2 {
		if _, err := h(wm.Copy()); err != nil {
			t.Fatal(err)
		}
	}
	var amount int
	if err := pool.QueryRow(ctx, `SELECT amount FROM `+balances).Scan(&amount); err != nil {
		t.Fatal(err)
	}
	if amount != 10 {
		t.Fatalf("amount = %d after 10 deliveries of one message; the effect must happen once", amount)
	}
	if st := pending(t, ob); st.Pending != 1 {
		t.Fatalf("follow-up messages in the outbox = %d, want 1", st.Pending)
	}
	// The follow-up carries the incoming message's correlation.
	rec := newRecorder()
	runRelay(t, pool, rec, outbox.WithTable(outTable))
	waitFor(t, 5*time.Second, "follow-up", func() bool { return rec.distinct() == 1 })
	if got := rec.messages()[0].Metadata.Get(router.KeyCausationID); got != wm.UUID {
		t.Logf("causation id %q (the raw middleware has no typed-handler context)", got)
	}
	// A consumer with another name handles the same message again.
	other := in.Middleware("audit")(func(*message.Message) ([]*message.Message, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		return nil, nil
	})
	if _, err := other(wm.Copy()); err != nil {
		t.Fatal(err)
	}
	if calls < 2 || calls > 9 {
		t.Fatalf("handler calls = %d", calls)
	}
}

func TestInboxHandlerErrorRollsBackEffectAndClaim(t *testing.T) {
	pool := testenv.Postgres(t)
	ctx := context.Background()
	in, table := newInbox(t, pool)
	attempt := 0
	h := outbox.TxHandler(in, "flaky", func(ctx context.Context, tx pgx.Tx, m UserRegistered) error {
		attempt++
		if attempt == 1 {
			return errors.New("first attempt fails")
		}
		if _, ok := outbox.Tx(ctx); !ok {
			return errors.New("ctx has no tx")
		}
		return nil
	})
	fn, err := router.NewHandlerFunc[UserRegistered](h, nil)
	if err != nil {
		t.Fatal(err)
	}
	wm, _ := router.NewMessage(ctx, UserRegistered{UserID: "1"}, router.EncodeOptions{})
	if err := fn(wm); err == nil {
		t.Fatal("first attempt did not fail")
	}
	var rows int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&rows)
	if rows != 0 {
		t.Fatalf("failed attempt left %d inbox rows", rows)
	}
	for range 3 {
		if err := fn(wm); err != nil {
			t.Fatal(err)
		}
	}
	if attempt != 2 {
		t.Fatalf("handler ran %d times, want 2 (one failure, one success, then duplicates skipped)", attempt)
	}
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&rows)
	if rows != 1 {
		t.Fatalf("inbox rows = %d", rows)
	}
}

func TestInboxCleanup(t *testing.T) {
	pool := testenv.Postgres(t)
	ctx := context.Background()
	table := "inbox_test_" + testenv.Suffix()
	in, err := outbox.NewInbox(postgres.New(pool), outbox.WithInboxTable(table), outbox.WithInboxRetention(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = pool.Exec(ctx, `DROP TABLE IF EXISTS `+table) })
	for i := range 10 {
		_, err := pool.Exec(ctx, `INSERT INTO `+table+` (consumer, message_id, received_at) VALUES ('c', $1, now() - make_interval(hours => $2))`, fmt.Sprint(i), i%2*2)
		if err != nil {
			t.Fatal(err)
		}
	}
	n, err := in.Cleanup(ctx)
	if err != nil || n != 5 {
		t.Fatalf("cleanup = %d, %v; want 5", n, err)
	}
}

// An Inbox runs as an App worker.
var _ hexeract.Worker = (*outbox.Inbox[pgx.Tx])(nil)

func TestInboxRunTrimsExpiredRows(t *testing.T) {
	pool := testenv.Postgres(t)
	ctx := context.Background()
	table := "inbox_test_" + testenv.Suffix()
	in, err := outbox.NewInbox(postgres.New(pool), outbox.WithInboxTable(table), outbox.WithInboxRetention(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = pool.Exec(ctx, `DROP TABLE IF EXISTS `+table)
		_, _ = pool.Exec(ctx, `DELETE FROM hexeract_schema_migrations WHERE component = $1`, "inbox:"+table)
	})
	count := func() int {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Two expired rows before Run starts, then a fresh one that expires
	// while Run is running.
	if _, err := pool.Exec(ctx, `INSERT INTO `+table+` (consumer, message_id, received_at) VALUES ('c', 'old-1', now() - interval '1 hour'), ('c', 'old-2', now() - interval '1 hour'), ('c', 'fresh', now())`); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- in.Run(runCtx) }()
	testenv.WaitFor(t, 5*time.Second, "the expired rows to be deleted", func() bool { return count() == 1 })
	testenv.WaitFor(t, 10*time.Second, "the fresh row to expire and be deleted", func() bool { return count() == 0 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v after cancel; want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
