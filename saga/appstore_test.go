package saga_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/saga"
	"github.com/hexeract/hexeract/store/sqlite"
)

// TestRegisterOnAppStore: with a nil store, a saga lives in the App's
// store (hexeract.WithStore): App.Migrate creates its table, its timeout
// goes through the App's scheduler and its messages through the App's
// outbox, behind the App's inbox.
func TestRegisterOnAppStore(t *testing.T) {
	ctx := context.Background()
	d, err := sqlite.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "sagas.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = d.Close() }()
	app, err := hexeract.New(hexeract.WithLogger(quietLogger()), hexeract.WithStore(d, hexeract.WithInbox()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = app.Close() }()
	var mu sync.Mutex
	var rang []int
	def := saga.Define[Timer]("app_timer")
	saga.StartedBy(def, func(e Rearm) string { return e.ID }, func(c *saga.Context[Timer], s *Timer, e Rearm) error {
		s.Armed++
		c.Timeout(e.After, Ring{N: s.Armed})
		return nil
	})
	saga.OnTimeout(def, func(c *saga.Context[Timer], s *Timer, r Ring) error {
		mu.Lock()
		rang = append(rang, r.N)
		mu.Unlock()
		c.Complete()
		return nil
	})
	must(t, saga.Register(app, def, nil, saga.WithRetention(time.Hour)))
	must(t, app.Migrate(ctx))
	testenv.StartApp(t, app)
	must(t, hexeract.InTx(ctx, app, func(ctx context.Context, _ *sql.Tx) error {
		return app.Publish(ctx, Rearm{ID: "a-1", After: 200 * time.Millisecond})
	}))
	sagas, err := saga.NewSQLStore(d, saga.WithTable(app.StoreTable("sagas")))
	must(t, err)
	testenv.WaitFor(t, 15*time.Second, "the saga completed by its timeout", func() bool {
		in, err := sagas.Get(ctx, "app_timer", "a-1")
		return err == nil && in.Status == saga.Completed
	})
	mu.Lock()
	defer mu.Unlock()
	if len(rang) != 1 || rang[0] != 1 {
		t.Fatalf("timeouts fired: %v, want [1]", rang)
	}
}
