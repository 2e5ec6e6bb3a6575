package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/postgres"
	"github.com/hexeract/hexeract/store/storeurl"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/scheduler"
)

type cliReminder struct {
	Note string `json:"note"`
}

func (cliReminder) MessageType() string { return "cli.reminder" }

// runSchedulerCLI runs a new hexeract command tree with args, so every flag
// starts at its default.
func runSchedulerCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	// A fresh command tree: no flag keeps a value from an earlier run.
	rootCmd := newRootCommand()
	var out, errOut bytes.Buffer
	rootCmd.SetOut(&out)
	rootCmd.SetErr(&errOut)
	rootCmd.SetArgs(args)
	err = rootCmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func TestSchedulerListAndCancel(t *testing.T) {
	url := testenv.PostgresURL(t)
	pool := testenv.Postgres(t)
	ctx := context.Background()
	s, table := newCLIScheduler(t, pool)
	later, err := s.ScheduleWith(ctx, postgres.New(pool).Executor(), time.Now().Add(time.Hour), cliReminder{Note: "later"})
	if err != nil {
		t.Fatal(err)
	}
	sooner, err := s.ScheduleWith(ctx, postgres.New(pool).Executor(), time.Now().Add(time.Minute), cliReminder{Note: "sooner"})
	if err != nil {
		t.Fatal(err)
	}

	other, err := s.ScheduleWith(ctx, postgres.New(pool).Executor(), time.Now().Add(time.Hour), cliOtherReminder{})
	if err != nil {
		t.Fatal(err)
	}
	// --topic: the count is the topic's, not the table's.
	out, _, err := runSchedulerCLI(t, "scheduler", "list", "--database-url", url, "--table", table, "--topic", "cli.other")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "1 shown, 1 pending for cli.other in") || !strings.Contains(out, other[0]) {
		t.Fatalf("list --topic output:\n%s", out)
	}
	if _, _, err := runSchedulerCLI(t, "scheduler", "cancel", "--database-url", url, "--table", table, other[0]); err != nil {
		t.Fatal(err)
	}

	out, _, err = runSchedulerCLI(t, "scheduler", "list", "--database-url", url, "--table", table)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "2 shown, 2 pending") || strings.Index(out, sooner[0]) > strings.Index(out, later[0]) ||
		!strings.Contains(out, "cli.reminder") || !strings.Contains(out, "in 1m0s") {
		t.Fatalf("list output:\n%s", out)
	}

	out, _, err = runSchedulerCLI(t, "scheduler", "cancel", "--database-url", url, "--table", table, later[0])
	if err != nil || !strings.Contains(out, "cancelled "+later[0]) {
		t.Fatalf("cancel: %v\n%s", err, out)
	}
	_, errOut, err := runSchedulerCLI(t, "scheduler", "cancel", "--database-url", url, "--table", table, later[0])
	if err == nil || !strings.Contains(errOut, "not pending: "+later[0]) {
		t.Fatalf("second cancel of %s: err %v, stderr %q", later[0], err, errOut)
	}

	out, _, err = runSchedulerCLI(t, "scheduler", "list", "--database-url", url, "--table", table, "--json")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var got struct {
		ID    string    `json:"id"`
		Topic string    `json:"topic"`
		Type  string    `json:"type"`
		DueAt time.Time `json:"due_at"`
	}
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &got) != nil || got.ID != sooner[0] || got.Type != "cli.reminder" {
		t.Fatalf("list --json after cancel:\n%s", out)
	}

	_, _, err = runSchedulerCLI(t, "scheduler", "list", "--database-url", url, "--table", "no_such_table_"+testenv.Suffix())
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("list of a missing table: %v", err)
	}
	_, _, err = runSchedulerCLI(t, "scheduler", "list", "--database-url", url, "--table", "bad name")
	if err == nil || !strings.Contains(err.Error(), "invalid SQL name") {
		t.Fatalf("list with a bad table name: %v", err)
	}
}

type cliOtherReminder struct{}

func (cliOtherReminder) MessageType() string { return "cli.other" }

// A saga's timeout (metadata saga_name/saga_key, as the saga runtime writes
// it) is not cancelled behind the saga's back: cancel refuses it, says
// which saga instance waits for it, fails, and leaves it pending; --force
// cancels it.
func TestSchedulerCancelRefusesASagaTimeout(t *testing.T) {
	url := testenv.PostgresURL(t)
	pool := testenv.Postgres(t)
	ctx := context.Background()
	s, table := newCLIScheduler(t, pool)
	timeout := message.NewMessage("t-1", []byte(`{}`))
	timeout.Metadata.Set(router.KeyType, "trips.expired")
	timeout.Metadata.Set(router.KeySagaName, "trips")
	timeout.Metadata.Set(router.KeySagaKey, "trip-7")
	ids, err := s.ScheduleMessagesWith(ctx, postgres.New(pool).Executor(), time.Now().Add(time.Hour), "trips.expired", timeout)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := s.ScheduleWith(ctx, postgres.New(pool).Executor(), time.Now().Add(time.Hour), cliReminder{Note: "plain"})
	if err != nil {
		t.Fatal(err)
	}

	out, errOut, err := runSchedulerCLI(t, "scheduler", "cancel", "--database-url", url, "--table", table, ids[0], plain[0])
	if err == nil || !strings.Contains(err.Error(), "saga timeouts") {
		t.Fatalf("cancel of a saga timeout: err %v; want a refusal", err)
	}
	if !strings.Contains(errOut, "saga trips instance trip-7") || !strings.Contains(errOut, "hexeract saga show trips trip-7") || !strings.Contains(out, "cancelled "+plain[0]) {
		t.Fatalf("stdout %q, stderr %q: want the saga named and the other id cancelled", out, errOut)
	}
	if p, err := s.Get(ctx, ids[0]); err != nil || p.Metadata.Get(router.KeySagaName) != "trips" {
		t.Fatalf("the refused timeout: %+v, %v; want it still pending", p, err)
	}

	out, _, err = runSchedulerCLI(t, "scheduler", "cancel", "--database-url", url, "--table", table, "--force", ids[0])
	if err != nil || !strings.Contains(out, "cancelled "+ids[0]) {
		t.Fatalf("cancel --force: %v\n%s", err, out)
	}
	if _, err := s.Get(ctx, ids[0]); !errors.Is(err, scheduler.ErrNotFound) {
		t.Fatalf("after cancel --force: %v; want ErrNotFound", err)
	}
}

// newCLIScheduler migrates a scheduler table of the test's own, removed
// when the test ends, and returns the CLI's read-and-cancel Scheduler on it.
func newCLIScheduler(t *testing.T, pool *pgxpool.Pool) (*scheduler.Scheduler[pgx.Tx], string) {
	t.Helper()
	table := "cli_sched_" + testenv.Suffix()
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+table+`, `+table+`_ticks, `+table+`_leases`)
		_, _ = pool.Exec(context.Background(), `DELETE FROM `+store.MigrationTable+` WHERE component = $1`, "scheduler:"+table)
	})
	s, err := scheduler.New(postgres.New(pool), refuseSink, scheduler.WithTable(table))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, table
}

// TestSchedulerCommandsOnSQLite: migrate up, list and cancel (with the
// saga-timeout refusal) through a sqlite:// URL, and on MariaDB.
func TestSchedulerCommandsOnOtherDrivers(t *testing.T) {
	for name, url := range map[string]string{
		"sqlite":  "sqlite://" + filepath.Join(t.TempDir(), "cli.db"),
		"mariadb": testenv.MySQLURL(t),
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			table := "cli_sched_" + testenv.Suffix()
			out, _, err := runSchedulerCLI(t, "migrate", "up", "--database-url", url,
				"--outbox-table", "", "--inbox-table", "", "--saga-table", "", "--dead-letter-table", "", "--scheduler-table", table)
			if err != nil || !strings.Contains(out, "applied scheduler:"+table+" version 1") {
				t.Fatalf("migrate up: %v\n%s", err, out)
			}
			st, err := storeurl.Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = st.Close() }()
			s, err := scheduler.New(store.Untyped(st), refuseSink, scheduler.WithTable(table))
			if err != nil {
				t.Fatal(err)
			}
			timeout := message.NewMessage("t-1", []byte(`{}`))
			timeout.Metadata.Set(router.KeySagaName, "trips")
			ids, err := s.ScheduleMessagesWith(ctx, st.Executor(), time.Now().Add(time.Hour), "trips.expired", timeout)
			if err != nil {
				t.Fatal(err)
			}
			plain, err := s.ScheduleWith(ctx, st.Executor(), time.Now().Add(time.Minute), cliReminder{Note: "plain"})
			if err != nil {
				t.Fatal(err)
			}
			out, _, err = runSchedulerCLI(t, "scheduler", "list", "--database-url", url, "--table", table)
			if err != nil || !strings.Contains(out, plain[0]) || !strings.Contains(out, ids[0]) || !strings.Contains(out, "2 shown, 2 pending") {
				t.Fatalf("list: %v\n%s", err, out)
			}
			if _, _, err = runSchedulerCLI(t, "scheduler", "cancel", "--database-url", url, "--table", table, ids[0]); err == nil {
				t.Fatal("cancel of a saga timeout accepted without --force")
			}
			out, _, err = runSchedulerCLI(t, "scheduler", "cancel", "--database-url", url, "--table", table, "--force", ids[0], plain[0])
			if err != nil || !strings.Contains(out, "cancelled "+plain[0]) {
				t.Fatalf("cancel --force: %v\n%s", err, out)
			}
			if n, err := s.Count(ctx); err != nil || n != 0 {
				t.Fatalf("Count after cancel = %d, %v", n, err)
			}
			if name == "mariadb" {
				d, _ := st.(interface{ DB() *sql.DB })
				_, _ = d.DB().Exec("DROP TABLE IF EXISTS " + table + ", " + table + "_ticks, " + table + "_leases")
				_, _ = d.DB().Exec("DELETE FROM hexeract_schema_migrations WHERE component = ?", "scheduler:"+table)
			}
		})
	}
}
