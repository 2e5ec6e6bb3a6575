package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hexeract/hexeract/store"
)

// RunCore runs the tests of what every driver offers whatever the
// component: migrations, transactions and notifications.
func RunCore[TTx any](t *testing.T, h Harness[TTx]) {
	t.Run("MigrateOnceUnderConcurrency", func(t *testing.T) { t.Parallel(); testMigrateConcurrent(t, h) })
	t.Run("MigrationStatusChangesNothing", func(t *testing.T) { t.Parallel(); testMigrationStatus(t, h) })
	t.Run("Transactions", func(t *testing.T) { t.Parallel(); testTx(t, h) })
	t.Run("NotifyWakesListener", func(t *testing.T) { t.Parallel(); testNotify(t, h) })
}

// coreMigrations would fail if applied twice: the seed's primary key.
func coreMigrations() []store.Migration {
	return []store.Migration{
		{Version: 1, Name: "create", SQL: "CREATE TABLE storetest_core (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)"},
		{Version: 2, Name: "seed", SQL: "INSERT INTO storetest_core (id, v) VALUES (1, 0)"},
	}
}

func testMigrateConcurrent[TTx any](t *testing.T, h Harness[TTx]) {
	ctx := context.Background()
	url := h.URL(t)
	const migrators = 5
	drivers := make([]store.Driver[TTx], migrators)
	for i := range drivers {
		drivers[i] = h.Open(t, url)
	}
	var wg sync.WaitGroup
	applied := make([][]int, migrators)
	errs := make([]error, migrators)
	for i, d := range drivers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied[i], errs[i] = d.Migrate(ctx, "storetest_core", coreMigrations())
		}()
	}
	wg.Wait()
	total := 0
	for i := range drivers {
		if errs[i] != nil {
			t.Fatalf("migrator %d: %v", i, errs[i])
		}
		total += len(applied[i])
	}
	if total != 2 {
		t.Fatalf("%d migrators applied %d migrations in all, want 2 (each once): %v", migrators, total, applied)
	}
	again, err := drivers[0].Migrate(ctx, "storetest_core", coreMigrations())
	if err != nil || len(again) != 0 {
		t.Fatalf("second run applied %v (err %v), want nothing", again, err)
	}
	st, err := drivers[0].MigrationStatus(ctx, "storetest_core", coreMigrations())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Pending() {
			t.Fatalf("version %d still pending after Migrate", s.Version)
		}
	}
}

func testMigrationStatus[TTx any](t *testing.T, h Harness[TTx]) {
	ctx := context.Background()
	d := h.OpenFresh(t)
	st, err := d.MigrationStatus(ctx, "storetest_status", coreMigrations())
	if err != nil {
		t.Fatalf("MigrationStatus on an empty database: %v", err)
	}
	if len(st) != 2 || !st[0].Pending() || !st[1].Pending() {
		t.Fatalf("status on an empty database = %+v, want 2 pending", st)
	}
	// Still nothing there: Migrate must find the version table missing
	// and create it, which it could not if Status had created it half-way.
	if _, err := d.Migrate(ctx, "storetest_status", coreMigrations()[:1]); err != nil {
		t.Fatal(err)
	}
	st, err = d.MigrationStatus(ctx, "storetest_status", coreMigrations())
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Pending() || !st[1].Pending() {
		t.Fatalf("status after migrating version 1 = %+v", st)
	}
	if _, err := d.Migrate(ctx, "x", []store.Migration{{Version: 1}, {Version: 1}}); err == nil {
		t.Fatal("Migrate accepted two migrations with one version")
	}
}

func testTx[TTx any](t *testing.T, h Harness[TTx]) {
	ctx := context.Background()
	d := h.OpenFresh(t)
	if _, err := d.Migrate(ctx, "storetest_core", coreMigrations()[:1]); err != nil {
		t.Fatal(err)
	}
	count := func() int64 {
		t.Helper()
		var n int64
		if err := d.InTx(ctx, func(ctx context.Context, tx TTx) error {
			var err error
			n, err = h.QueryInt(ctx, tx, "SELECT COUNT(*) FROM storetest_core")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	insert := "INSERT INTO storetest_core (id, v) VALUES (?, ?)"
	if d.Dialect() == store.Postgres {
		insert = "INSERT INTO storetest_core (id, v) VALUES ($1, $2)"
	}
	// InTx commits on nil, rolls back on error and on panic.
	if err := d.InTx(ctx, func(ctx context.Context, tx TTx) error { return h.Exec(ctx, tx, insert, 1, 1) }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := d.InTx(ctx, func(ctx context.Context, tx TTx) error {
		if err := h.Exec(ctx, tx, insert, 2, 2); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("InTx returned %v, want the function's error", err)
	}
	func() {
		defer func() { _ = recover() }()
		_ = d.InTx(ctx, func(ctx context.Context, tx TTx) error {
			if err := h.Exec(ctx, tx, insert, 3, 3); err != nil {
				return err
			}
			panic("handler panics")
		})
	}()
	if n := count(); n != 1 {
		t.Fatalf("%d rows after a commit, an error and a panic; want 1", n)
	}
	// A borrowed transaction: the caller commits, the store refuses to.
	err := d.InTx(ctx, func(ctx context.Context, tx TTx) error {
		ex := d.UnwrapTx(tx)
		if err := ex.Commit(ctx); !errors.Is(err, store.ErrBorrowedTx) {
			t.Errorf("Commit of a borrowed tx = %v, want ErrBorrowedTx", err)
		}
		if err := ex.Rollback(ctx); !errors.Is(err, store.ErrBorrowedTx) {
			t.Errorf("Rollback of a borrowed tx = %v, want ErrBorrowedTx", err)
		}
		back, ok := d.TxOf(ex)
		if !ok || any(back) != any(tx) {
			t.Errorf("TxOf(UnwrapTx(tx)) = %v, %v; want tx", back, ok)
		}
		return h.Exec(ctx, tx, insert, 4, 4)
	})
	if err != nil {
		t.Fatal(err)
	}
	// Begin: TxOf reaches the driver transaction; Rollback undoes.
	ex, err := d.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx, ok := d.TxOf(ex)
	if !ok {
		t.Fatal("TxOf of a Begin transaction failed")
	}
	if err := h.Exec(ctx, tx, insert, 5, 5); err != nil {
		t.Fatal(err)
	}
	if err := ex.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.TxOf(d.Executor()); ok {
		t.Fatal("TxOf of the pool executor reported a transaction")
	}
	if n := count(); n != 2 {
		t.Fatalf("%d rows, want 2 (the first commit and the borrowed one)", n)
	}
	// store.Untyped gives the same through ExecutorTx.
	u := store.Untyped(d)
	if err := u.InTx(ctx, func(ctx context.Context, tx store.ExecutorTx) error {
		if _, ok := d.TxOf(tx); !ok {
			t.Error("the driver does not recognise the transaction of store.Untyped's InTx")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func testNotify[TTx any](t *testing.T, h Harness[TTx]) {
	d := h.OpenFresh(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{}, 1)
	woke := make(chan struct{}, 16)
	done := make(chan error, 1)
	go func() {
		done <- d.Notifier().Listen(ctx, "storetest_chan",
			func() { ready <- struct{}{} }, func() { woke <- struct{}{} })
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("Listen never became ready")
	}
	if err := d.Notifier().Notify(ctx, "storetest_chan"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-woke:
	case <-time.After(10 * time.Second):
		t.Fatal("Notify did not wake the listener of the same driver")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Listen returned %v after its context ended, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Listen did not return after its context ended")
	}
}
