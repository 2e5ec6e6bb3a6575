package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	neturl "net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/saga"
	"github.com/hexeract/hexeract/store/mysql"
	"github.com/hexeract/hexeract/store/storeurl"
)

func runSagaCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	rootCmd := newRootCommand()
	rootCmd.SetOut(&out)
	rootCmd.SetErr(&out)
	rootCmd.SetArgs(args)
	err := rootCmd.Execute()
	return out.String(), err
}

// TestSagaListAndShow runs "saga list" and "saga show" on each driver:
// PostgreSQL, MariaDB and SQLite.
func TestSagaListAndShow(t *testing.T) {
	t.Run("postgres", func(t *testing.T) {
		url := testenv.PostgresURL(t)
		pool := testenv.Postgres(t)
		table := "saga_cli_" + testenv.Suffix()
		t.Cleanup(func() {
			_, _ = pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+table+`, `+table+`_history`)
			_, _ = pool.Exec(context.Background(), `DROP FUNCTION IF EXISTS `+table+`_save`)
			_, _ = pool.Exec(context.Background(), `DELETE FROM hexeract_schema_migrations WHERE component = $1`, saga.Component(table))
		})
		testSagaListAndShow(t, url, table)
	})
	t.Run("mariadb", func(t *testing.T) {
		admin, err := mysql.Open(context.Background(), testenv.MySQLURL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = admin.Close() })
		name := "hx_cli_" + testenv.Suffix()
		if _, err := admin.DB().Exec("CREATE DATABASE " + name); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = admin.DB().Exec("DROP DATABASE IF EXISTS " + name) })
		u, err := neturl.Parse(testenv.MySQLURL(t))
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/" + name
		testSagaListAndShow(t, u.String(), "saga_cli")
	})
	t.Run("sqlite", func(t *testing.T) {
		testSagaListAndShow(t, "sqlite://"+filepath.Join(t.TempDir(), "cli.db"), "saga_cli")
	})
}

func testSagaListAndShow(t *testing.T, url, table string) {
	ctx := context.Background()
	st, err := storeurl.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	store, err := saga.NewSQLStore(st, saga.WithTable(table))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runSagaCLI(t, "saga", "list", "--database-url", url, "--table", table); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("saga list before the table exists: %v, want advice that it does not exist", err)
	}
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// Two instances: one running with a timeout and a compensation, one
	// failed and kept.
	tx, err := store.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	running := &saga.Instance{Saga: "orders", Key: "o-1", Status: saga.Running, State: json.RawMessage(`{"amount":42,"reserved":true}`),
		Meta: saga.Meta{
			Timeouts:      map[string]saga.PendingTimeout{"orders.payment_due": {Token: "t", ScheduleID: "s-1", At: time.Now().Add(time.Hour)}},
			Compensations: []saga.Step{{Type: "stock.release", Payload: json.RawMessage(`{"order_id":"o-1"}`)}},
		}}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	failed := &saga.Instance{Saga: "orders", Key: "o-2", Status: saga.Failed, State: json.RawMessage(`{}`),
		Meta: saga.Meta{Failure: "card declined", History: []saga.HistoryEntry{
			{At: at, Kind: saga.HistoryEvent, Type: "orders.placed", Status: saga.Running},
			{At: at, Kind: saga.HistoryEvent, Type: "payment.failed", Status: saga.Compensating, Note: "failed: card declined; 1 compensation(s) to run"},
			{At: at, Kind: saga.HistoryCompensation, Type: "stock.release", Status: saga.Failed},
		}}, CompletedAt: time.Now()}
	for _, in := range []*saga.Instance{running, failed} {
		if err := tx.Insert(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	out, err := runSagaCLI(t, "saga", "list", "--database-url", url, "--table", table, "--saga", "", "--status", "", "--json=false")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"SAGA", "o-1", "running", "o-2", "failed"} {
		if !strings.Contains(out, want) {
			t.Fatalf("saga list output lacks %q:\n%s", want, out)
		}
	}
	out, err = runSagaCLI(t, "saga", "list", "--database-url", url, "--table", table, "--saga", "orders", "--status", "failed", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil || v["key"] != "o-2" || v["failure"] != "card declined" {
		t.Fatalf("saga list --status failed --json = %s (%v)", out, err)
	}

	out, err = runSagaCLI(t, "saga", "show", "orders", "o-1", "--database-url", url, "--table", table, "--json=false")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"status:    running", "version:   1", `"amount": 42`, "orders.payment_due", "s-1", "stock.release"} {
		if !strings.Contains(out, want) {
			t.Fatalf("saga show output lacks %q:\n%s", want, out)
		}
	}

	out, err = runSagaCLI(t, "saga", "show", "orders", "o-2", "--database-url", url, "--table", table, "--json=false")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"status:    failed", "failure:   card declined", "history (oldest first):",
		"2026-01-02T03:04:05Z  event         orders.placed   -> running",
		"event         payment.failed  -> compensating  failed: card declined; 1 compensation(s) to run",
		"compensation  stock.release   -> failed"} {
		if !strings.Contains(out, want) {
			t.Fatalf("saga show of the failed instance lacks %q:\n%s", want, out)
		}
	}
	out, err = runSagaCLI(t, "saga", "show", "orders", "o-2", "--database-url", url, "--table", table, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var shown struct {
		History []saga.HistoryEntry `json:"history"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil || len(shown.History) != 3 || shown.History[2].Type != "stock.release" {
		t.Fatalf("saga show --json history = %+v (%v)\n%s", shown.History, err, out)
	}

	if _, err := runSagaCLI(t, "saga", "show", "orders", "missing", "--database-url", url, "--table", table); err == nil || !strings.Contains(err.Error(), `no instance of saga "orders" with key "missing"`) {
		t.Fatalf("show of a missing instance: %v", err)
	}
	if _, err := runSagaCLI(t, "saga", "list", "--database-url", url, "--table", table, "--status", "bogus"); err == nil || !strings.Contains(err.Error(), "unknown --status") {
		t.Fatalf("bad status: %v", err)
	}
	if _, err := runSagaCLI(t, "saga", "list", "--database-url", url, "--table", "bad;name", "--status", ""); err == nil || !strings.Contains(err.Error(), "invalid SQL name") {
		t.Fatalf("bad table: %v", err)
	}
}

// TestMigrateCoversEveryComponent checks that "migrate up" and "migrate
// status" cover the outbox, the inbox, the saga store and the scheduler, and
// that "migrate status" exits with status 3 while any migration is pending
// and 0 once none is.
func TestMigrateCoversEveryComponent(t *testing.T) {
	url := testenv.PostgresURL(t)
	pool := testenv.Postgres(t)
	sfx := testenv.Suffix()
	ob, in, sg, sc, dl := "mig_ob_"+sfx, "mig_in_"+sfx, "mig_saga_"+sfx, "mig_sched_"+sfx, "mig_dl_"+sfx
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = pool.Exec(ctx, `DROP TABLE IF EXISTS `+ob+`, `+ob+`_dead, `+ob+`_delivered, `+in+`, `+sg+`, `+sg+`_history, `+sc+`, `+sc+`_ticks, `+sc+`_leases, `+dl+`, `+dl+`_audit`)
		_, _ = pool.Exec(ctx, `DROP FUNCTION IF EXISTS `+sg+`_save`)
		_, _ = pool.Exec(ctx, `DELETE FROM hexeract_schema_migrations WHERE component = ANY($1)`,
			[]string{"outbox:" + ob, "inbox:" + in, saga.Component(sg), "scheduler:" + sc, "deadletter:" + dl})
	})
	args := []string{"--database-url", url, "--outbox-table", ob, "--inbox-table", in, "--saga-table", sg, "--scheduler-table", sc, "--dead-letter-table", dl}
	components := []string{"outbox:" + ob, "inbox:" + in, "saga:" + sg, "scheduler:" + sc, "deadletter:" + dl}

	out, _, err := runOutboxCLI(t, append([]string{"migrate", "status"}, args...)...)
	if code := exitStatus(io.Discard, err, false); code != exitPending {
		t.Fatalf("migrate status before up: exit status %d (%v), want %d\n%s", code, err, exitPending, out)
	}
	for _, c := range components {
		if !strings.Contains(out, c) {
			t.Errorf("migrate status does not list %s:\n%s", c, out)
		}
	}
	out, _, err = runOutboxCLI(t, append([]string{"migrate", "up"}, args...)...)
	if err != nil {
		t.Fatalf("migrate up: %v\n%s", err, out)
	}
	for _, c := range components {
		if !strings.Contains(out, "applied "+c+" version 1") {
			t.Errorf("migrate up did not apply %s:\n%s", c, out)
		}
	}
	out, _, err = runOutboxCLI(t, append([]string{"migrate", "status"}, args...)...)
	if err != nil || strings.Contains(out, "pending") {
		t.Fatalf("migrate status after up: %v\n%s", err, out)
	}
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM `+sc+`_leases`).Scan(&n); err != nil {
		t.Fatalf("scheduler tables not created: %v", err)
	}
	out, err = runSagaCLI(t, "saga", "list", "--database-url", url, "--table", sg, "--saga", "", "--status", "", "--json=false")
	if err != nil || !strings.Contains(out, "no saga instances") {
		t.Fatalf("list on the migrated table: %v\n%s", err, out)
	}
	for _, flag := range []string{"--outbox-table", "--inbox-table", "--saga-table", "--scheduler-table", "--dead-letter-table"} {
		_, _, err := runOutboxCLI(t, "migrate", "up", "--database-url", url, flag, "Bad-Name")
		if err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("migrate up %s Bad-Name: %v, want an error naming the flag", flag, err)
		}
	}
}
