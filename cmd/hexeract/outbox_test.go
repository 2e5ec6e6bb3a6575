package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/store/postgres"
)

type cliSignup struct {
	Email string `json:"email"`
}

func (cliSignup) MessageType() string { return "cli.signup" }

// runOutboxCLI runs a new hexeract command tree with args, so every flag
// starts at its default.
func runOutboxCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
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

func TestMigrateUpStatusAndOutboxDeadRows(t *testing.T) {
	url := testenv.PostgresURL(t)
	pool := testenv.Postgres(t)
	ctx := context.Background()
	suffix := testenv.Suffix()
	table, inbox := "cli_ob_"+suffix, "cli_in_"+suffix
	t.Cleanup(func() {
		_, _ = pool.Exec(ctx, fmt.Sprintf(`DROP TABLE IF EXISTS %s, %s_dead, %s_delivered, %s`, table, table, table, inbox))
		_, _ = pool.Exec(ctx, `DELETE FROM hexeract_schema_migrations WHERE component IN ($1, $2)`, "outbox:"+table, "inbox:"+inbox)
	})
	t.Setenv("HEXERACT_DATABASE_URL", url)

	none := []string{"--saga-table", "", "--scheduler-table", "", "--dead-letter-table", ""}
	out, _, err := runOutboxCLI(t, append([]string{"migrate", "status", "--outbox-table", table, "--inbox-table", inbox}, none...)...)
	if exitStatus(io.Discard, err, false) != exitPending || !strings.Contains(out, "outbox:"+table) || !strings.Contains(out, "pending") {
		t.Fatalf("status before: %v\n%s", err, out)
	}
	out, _, err = runOutboxCLI(t, append([]string{"migrate", "up", "--outbox-table", table, "--inbox-table", inbox}, none...)...)
	if err != nil || !strings.Contains(out, "applied outbox:"+table+" version 1") || !strings.Contains(out, "applied inbox:"+inbox+" version 1") {
		t.Fatalf("up: %v\n%s", err, out)
	}
	out, _, err = runOutboxCLI(t, append([]string{"migrate", "up", "--outbox-table", table, "--inbox-table", inbox}, none...)...)
	if err != nil || !strings.Contains(out, "up to date") {
		t.Fatalf("second up: %v\n%s", err, out)
	}
	out, _, err = runOutboxCLI(t, append([]string{"migrate", "status", "--outbox-table", table, "--inbox-table", inbox, "--json"}, none...)...)
	if err != nil || strings.Count(out, `"applied_at"`) != 2 {
		t.Fatalf("status after: %v\n%s", err, out)
	}

	// 30 messages whose publishing always fails end dead.
	ob, err := outbox.New(postgres.New(pool), outbox.WithTable(table))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		msgs := make([]router.Message, 30)
		for i := range msgs {
			msgs[i] = cliSignup{Email: fmt.Sprint(i, "@example.com")}
		}
		ids, err = ob.Publish(ctx, tx, msgs...)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	out, _, err = runOutboxCLI(t, "outbox", "status", "--table", table)
	if err != nil || !strings.Contains(out, table) || !strings.Contains(out, " 30 ") {
		t.Fatalf("outbox status: %v\n%s", err, out)
	}
	relay, err := outbox.NewRelay(postgres.New(pool), failing{}, outbox.WithTable(table), outbox.WithMaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- relay.Run(rctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := ob.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Dead == 30 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rows did not die: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done

	out, _, err = runOutboxCLI(t, "outbox", "dead", "list", "--table", table, "--limit", "5")
	if err != nil || !strings.Contains(out, ids[0]) || !strings.Contains(out, "broker unreachable") || strings.Contains(out, ids[5]) {
		t.Fatalf("dead list: %v\n%s", err, out)
	}
	out, _, err = runOutboxCLI(t, "outbox", "dead", "replay", "--table", table, ids[0], ids[1])
	if err != nil || !strings.Contains(out, "replayed 2 dead rows") {
		t.Fatalf("replay ids: %v\n%s", err, out)
	}
	out, _, err = runOutboxCLI(t, "outbox", "dead", "replay", "--table", table, "no-such-id")
	if err == nil || !strings.Contains(out, "replayed 0") {
		t.Fatalf("replay of an unknown id: %v\n%s", err, out)
	}
	out, stderr, err := runOutboxCLI(t, "outbox", "dead", "replay", "--table", table, "--all", "--batch", "10")
	if err != nil || !strings.Contains(out, "replayed 28 dead rows") || !strings.Contains(stderr, "28/28") {
		t.Fatalf("replay --all: %v\n%s\n%s", err, out, stderr)
	}
	st, _ := ob.Stats(ctx)
	if st.Pending != 30 || st.Dead != 0 {
		t.Fatalf("after replay %+v", st)
	}
	if _, _, err := runOutboxCLI(t, "outbox", "dead", "purge", "--table", table); err == nil {
		t.Fatal("purge without ids or --all accepted")
	}
	if _, err := pool.Exec(ctx, `INSERT INTO `+table+`_dead SELECT seq, id, topic, ordering_key, metadata, payload, attempts, last_error, created_at FROM `+table); err != nil {
		t.Fatal(err)
	}
	out, _, err = runOutboxCLI(t, "outbox", "dead", "purge", "--table", table, "--all")
	if err != nil || !strings.Contains(out, "purged 30 dead rows") {
		t.Fatalf("purge: %v\n%s", err, out)
	}
}

type failing struct{}

func (failing) Publish(string, ...*message.Message) error { return errors.New("broker unreachable") }
func (failing) Close() error                              { return nil }

func TestOutboxCLIRefusesBadNamesAndHidesPasswords(t *testing.T) {
	t.Setenv("HEXERACT_DATABASE_URL", "postgres://u:s3cret-pw@127.0.0.1:1/db?connect_timeout=1")
	_, _, err := runOutboxCLI(t, "outbox", "status", "--table", "x;drop table y")
	if err == nil || !strings.Contains(err.Error(), "invalid SQL name") {
		t.Fatalf("bad name: %v", err)
	}
	_, _, err = runOutboxCLI(t, "migrate", "up", "--outbox-table", "Bad-Name")
	if err == nil || !strings.Contains(err.Error(), "invalid SQL name") {
		t.Fatalf("migrate with bad name: %v", err)
	}
	_, _, err = runOutboxCLI(t, "outbox", "status")
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("unreachable database: %v", err)
	}
}

// TestOutboxDeadReplayIDsAcrossTables checks that replay and purge of ids
// with several --table values act on each id in whichever table holds it,
// and fail only for ids that no table holds.
func TestOutboxDeadReplayIDsAcrossTables(t *testing.T) {
	url := testenv.PostgresURL(t)
	pool := testenv.Postgres(t)
	ctx := context.Background()
	suffix := testenv.Suffix()
	tables := []string{"cli_oba_" + suffix, "cli_obb_" + suffix}
	t.Cleanup(func() {
		for _, table := range tables {
			_, _ = pool.Exec(ctx, fmt.Sprintf(`DROP TABLE IF EXISTS %s, %s_dead, %s_delivered`, table, table, table))
			_, _ = pool.Exec(ctx, `DELETE FROM hexeract_schema_migrations WHERE component = $1`, "outbox:"+table)
		}
	})
	t.Setenv("HEXERACT_DATABASE_URL", url)
	// Two dead rows in each table: publish, then move the rows to the
	// dead table as the relay does after MaxAttempts.
	var ids [][]string
	for _, table := range tables {
		if err := outbox.Migrate(ctx, postgres.New(pool), outbox.WithTable(table)); err != nil {
			t.Fatal(err)
		}
		ob, err := outbox.New(postgres.New(pool), outbox.WithTable(table))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			got, err = ob.Publish(ctx, tx, cliSignup{Email: "a@example.com"}, cliSignup{Email: "b@example.com"})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got)
		if _, err := pool.Exec(ctx, `WITH d AS (DELETE FROM `+table+` RETURNING *) INSERT INTO `+table+
			`_dead SELECT seq, id, topic, ordering_key, metadata, payload, attempts, last_error, created_at FROM d`); err != nil {
			t.Fatal(err)
		}
	}
	both := "--table=" + tables[0] + "," + tables[1]

	out, _, err := runOutboxCLI(t, "outbox", "dead", "replay", both, ids[0][0], ids[1][0])
	if err != nil || !strings.Contains(out, "replayed 1 dead rows of "+tables[0]) || !strings.Contains(out, "replayed 1 dead rows of "+tables[1]) {
		t.Fatalf("replay of one id per table: %v\n%s", err, out)
	}
	out, _, err = runOutboxCLI(t, "outbox", "dead", "purge", both, ids[1][1], "no-such-id")
	if err == nil || !strings.Contains(err.Error(), "1 of 2 ids") || !strings.Contains(out, "purged 1 dead rows of "+tables[1]) {
		t.Fatalf("purge with an unknown id: %v\n%s", err, out)
	}
	out, _, err = runOutboxCLI(t, "outbox", "dead", "replay", both, ids[0][1], ids[0][1])
	if err != nil || !strings.Contains(out, "replayed 1 dead rows of "+tables[0]) {
		t.Fatalf("replay of an id given twice: %v\n%s", err, out)
	}
	for i, table := range tables {
		var pending, dead int
		if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM `+table+`), (SELECT count(*) FROM `+table+`_dead)`).Scan(&pending, &dead); err != nil {
			t.Fatal(err)
		}
		if pending != 2-i || dead != 0 {
			t.Fatalf("%s: %d pending, %d dead", table, pending, dead)
		}
	}
}
