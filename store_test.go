package hexeract_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/deadletter"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/saga"
	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/mysql"
	"github.com/hexeract/hexeract/store/postgres"
	"github.com/hexeract/hexeract/store/sqlite"
)

// StoreOrderPlaced is the event the App-store tests publish from a transaction.
type StoreOrderPlaced struct {
	ID string `json:"id"`
}

func (StoreOrderPlaced) MessageType() string { return "apptest.order_placed" }

// StoreOrderShipped is published by the StoreOrderPlaced handler.
type StoreOrderShipped struct {
	ID string `json:"id"`
}

func (StoreOrderShipped) MessageType() string { return "apptest.order_shipped" }

// storeCase is one driver the App-store tests run on.
type storeCase[TTx any] struct {
	drv  store.Driver[TTx]
	exec func(ctx context.Context, tx TTx, sql string, args ...any) error
	ph   func(i int) string
}

func sqlExec(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
	_, err := tx.ExecContext(ctx, q, args...)
	return err
}

func TestAppStore(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		d, err := sqlite.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "app.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Close() })
		testAppStore(t, storeCase[*sql.Tx]{drv: d, exec: sqlExec, ph: func(int) string { return "?" }})
	})
	t.Run("mariadb", func(t *testing.T) {
		t.Parallel()
		d, err := mysql.Open(context.Background(), testenv.MySQLURL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Close() })
		testAppStore(t, storeCase[*sql.Tx]{drv: d, exec: sqlExec, ph: func(int) string { return "?" }})
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		d := postgres.New(testenv.Postgres(t))
		testAppStore(t, storeCase[pgx.Tx]{drv: d, exec: func(ctx context.Context, tx pgx.Tx, q string, args ...any) error {
			_, err := tx.Exec(ctx, q, args...)
			return err
		}, ph: func(i int) string { return "$" + string(rune('0'+i)) }})
	})
}

func testAppStore[TTx any](t *testing.T, c storeCase[TTx]) {
	ctx := context.Background()
	prefix := "app_" + testenv.Suffix() + "_"
	orders := prefix + "orders"
	app, err := hexeract.New(hexeract.WithLogger(quietLogger()),
		hexeract.WithStore(c.drv, hexeract.WithTablePrefix(prefix), hexeract.WithInbox()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Close() })
	if got := app.Plugins(); !slices.Contains(got, "hexeract.outbox") || !slices.Contains(got, "hexeract.scheduler") || !slices.Contains(got, "hexeract.inbox") {
		t.Fatalf("Plugins() = %v, want the store's components listed", got)
	}
	// New touched nothing: Migrate creates the tables, and twice is fine.
	for range 2 {
		if err := app.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.drv.InTx(ctx, func(ctx context.Context, tx TTx) error {
		return c.exec(ctx, tx, "CREATE TABLE "+orders+" (id VARCHAR(64) PRIMARY KEY)")
	}); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	placed := map[string]int{}
	shipped := map[string]int{}
	failOnce := map[string]bool{}
	if err := hexeract.HandleFunc(app, func(ctx context.Context, ev StoreOrderPlaced) error {
		tx, ok := hexeract.TxFrom[TTx](ctx, app)
		if !ok {
			return errors.New("no transaction in the inbox handler")
		}
		if err := c.exec(ctx, tx, "INSERT INTO "+orders+"_seen (id) VALUES ("+c.ph(1)+")", ev.ID); err != nil {
			return err
		}
		if err := app.Publish(ctx, StoreOrderShipped(ev)); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		placed[ev.ID]++
		if ev.ID == "o-fail" && !failOnce[ev.ID] {
			// The first attempt's row, message and inbox claim roll back.
			failOnce[ev.ID] = true
			return errors.New("transient")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := hexeract.HandleFunc(app, func(ctx context.Context, ev StoreOrderShipped) error {
		mu.Lock()
		defer mu.Unlock()
		shipped[ev.ID]++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.drv.InTx(ctx, func(ctx context.Context, tx TTx) error {
		return c.exec(ctx, tx, "CREATE TABLE "+orders+"_seen (id VARCHAR(64))")
	}); err != nil {
		t.Fatal(err)
	}
	stop := testenv.StartApp(t, app)
	defer stop()

	place := func(id string, rollback bool) error {
		return hexeract.InTx(ctx, app, func(ctx context.Context, tx TTx) error {
			if err := c.exec(ctx, tx, "INSERT INTO "+orders+" (id) VALUES ("+c.ph(1)+")", id); err != nil {
				return err
			}
			if err := app.Publish(ctx, StoreOrderPlaced{ID: id}); err != nil {
				return err
			}
			if rollback {
				return errors.New("rolled back on purpose")
			}
			return nil
		})
	}
	for _, id := range []string{"o-1", "o-2", "o-fail"} {
		if err := place(id, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := place("o-rolled-back", true); err == nil {
		t.Fatal("InTx returned nil for a function that failed")
	}
	// A scheduled message is delivered when due, through the outbox.
	if _, err := app.Schedule(ctx, time.Now().Add(300*time.Millisecond), StoreOrderShipped{ID: "o-scheduled"}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "every order shipped", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return shipped["o-1"] == 1 && shipped["o-2"] == 1 && shipped["o-fail"] == 1 && shipped["o-scheduled"] == 1
	})
	time.Sleep(300 * time.Millisecond) // room for a phantom or a duplicate to show
	mu.Lock()
	if placed["o-rolled-back"] != 0 || shipped["o-rolled-back"] != 0 {
		t.Errorf("a rolled-back order was handled: placed %d, shipped %d", placed["o-rolled-back"], shipped["o-rolled-back"])
	}
	if placed["o-fail"] != 2 || shipped["o-fail"] != 1 {
		t.Errorf("o-fail: handled %d times (want 2: one failure, one success), shipped %d (want 1: the failed attempt's message rolled back)", placed["o-fail"], shipped["o-fail"])
	}
	mu.Unlock()
	var seen int64
	if err := c.drv.InTx(ctx, func(ctx context.Context, tx TTx) error {
		return queryInt(ctx, c.drv, tx, "SELECT COUNT(*) FROM "+orders+"_seen", &seen)
	}); err != nil {
		t.Fatal(err)
	}
	if seen != 3 {
		t.Errorf("%d handler rows committed, want 3 (the failed attempt's rolled back)", seen)
	}

	// The inbox: a redelivery of a handled message is acknowledged without
	// running the handler.
	wm, err := app.NewMessage(ctx, StoreOrderPlaced{ID: "o-dup"})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := app.Publisher().Publish(app.TopicFor(StoreOrderPlaced{}), wm.Copy()); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 20*time.Second, "the duplicate handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return shipped["o-dup"] == 1
	})
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	if placed["o-dup"] != 1 {
		t.Errorf("a message delivered 3 times was handled %d times, want 1", placed["o-dup"])
	}
	mu.Unlock()
}

// queryInt reads one integer in tx with the driver's own transaction type.
func queryInt[TTx any](ctx context.Context, _ store.Driver[TTx], tx TTx, q string, dst *int64) error {
	switch t := any(tx).(type) {
	case *sql.Tx:
		return t.QueryRowContext(ctx, q).Scan(dst)
	case pgx.Tx:
		return t.QueryRow(ctx, q).Scan(dst)
	}
	return errors.New("unknown transaction type")
}

// TestAppStoreDeadLetters: with a store, a message that fails for good is
// kept in the store's dead-letter table, which deadletter.Store lists.
func TestAppStoreDeadLetters(t *testing.T) {
	ctx := context.Background()
	d, err := sqlite.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "dl.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = d.Close() }()
	app, err := hexeract.New(hexeract.WithLogger(quietLogger()), hexeract.WithStore(d),
		hexeract.WithDefaultMiddleware(func(c *middleware.DefaultConfig) { c.Retry.MaxAttempts = 1 }))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = app.Close() }()
	if err := app.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := hexeract.HandleFunc(app, func(context.Context, StoreOrderPlaced) error { return errors.New("always fails") }); err != nil {
		t.Fatal(err)
	}
	stop := testenv.StartApp(t, app)
	defer stop()
	if err := app.Publish(ctx, StoreOrderPlaced{ID: "o-dead"}); err != nil {
		t.Fatal(err)
	}
	dl, err := deadletter.New(d)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "the dead letter stored", func() bool {
		rows, err := dl.List(ctx, deadletter.Filter{})
		return err == nil && len(rows) == 1
	})
}

// LeakTimer is the saga state of TestThousandAppsWithAStoreLeaveNothingBehind.
type LeakTimer struct{ N int }

// TestThousandAppsWithAStoreLeaveNothingBehind creates, runs and closes
// 1,000 Apps with every store component attached (outbox and relay,
// scheduler, inbox, dead-letter table, a saga on the App's store), each
// handling one message published through InTx, and checks that no
// goroutine is left and the heap does not grow.
func TestThousandAppsWithAStoreLeaveNothingBehind(t *testing.T) {
	ctx := context.Background()
	d, err := sqlite.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "leak.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = d.Close() }()
	n := 0
	testenv.CheckNothingLeft(t, 1000, 4<<20, func(t testing.TB) {
		n++
		app, err := hexeract.New(hexeract.WithLogger(quietLogger()), hexeract.WithStore(d, hexeract.WithInbox()))
		if err != nil {
			t.Fatal(err)
		}
		def := saga.Define[LeakTimer]("leak")
		saga.StartedBy(def, func(e StoreOrderPlaced) string { return e.ID }, func(c *saga.Context[LeakTimer], s *LeakTimer, _ StoreOrderPlaced) error {
			s.N++
			c.Complete()
			return nil
		})
		if err := saga.Register(app, def, nil, saga.WithRetention(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			if err := app.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
		}
		stop := testenv.StartApp(t, app)
		id := fmt.Sprint("leak-", n)
		if err := hexeract.InTx(ctx, app, func(ctx context.Context, _ *sql.Tx) error {
			return app.Publish(ctx, StoreOrderPlaced{ID: id})
		}); err != nil {
			t.Fatal(err)
		}
		sagas, err := saga.NewSQLStore(d, saga.WithTable(app.StoreTable("sagas")))
		if err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 10*time.Second, "the saga completed", func() bool {
			in, err := sagas.Get(ctx, "leak", id)
			return err == nil && in.Status == saga.Completed
		})
		stop()
		if err := app.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// closeCounter counts its Close calls and records their order.
type closeCounter struct {
	name  string
	order *[]string
}

func (c closeCounter) Close() error { *c.order = append(*c.order, c.name); return nil }

// TestWithOwned: the App closes what it was handed, last and in reverse
// order, once; a New that fails closes it too.
func TestWithOwned(t *testing.T) {
	var order []string
	app, err := hexeract.New(hexeract.WithLogger(quietLogger()),
		hexeract.WithOwned(closeCounter{"store", &order}, closeCounter{"transport", &order}))
	if err != nil {
		t.Fatal(err)
	}
	stop := testenv.StartApp(t, app)
	stop()
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	_ = app.Close()
	if want := []string{"transport", "store"}; !slices.Equal(order, want) {
		t.Fatalf("closed %v, want %v once each", order, want)
	}
	order = nil
	_, err = hexeract.New(hexeract.WithOwned(closeCounter{"store", &order}), hexeract.WithMiddleware(nil))
	if err == nil {
		t.Fatal("New accepted a nil middleware")
	}
	if !slices.Equal(order, []string{"store"}) {
		t.Fatalf("a failed New closed %v, want [store]", order)
	}
}
