package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hexeract/hexeract/deadletter"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/mysql"
	"github.com/hexeract/hexeract/store/postgres"
	"github.com/hexeract/hexeract/store/storetest"
	"github.com/hexeract/hexeract/store/storeurl"
)

// storedURL returns the URL of a fresh namespace of the test database of
// dialect: a PostgreSQL schema (search_path), a MariaDB database, an SQLite
// file.
func storedURL(t *testing.T, dialect store.Dialect) string {
	t.Helper()
	ctx := context.Background()
	name := "hx_" + testenv.Suffix()
	switch dialect {
	case store.Postgres:
		admin := testenv.Postgres(t)
		if _, err := admin.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP SCHEMA "+name+" CASCADE") })
		return testenv.PostgresURL(t) + "&search_path=" + name
	case store.MySQL:
		a, err := mysql.Open(ctx, testenv.MySQLURL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = a.Close() })
		if _, err := a.DB().Exec("CREATE DATABASE " + name); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = a.DB().Exec("DROP DATABASE IF EXISTS " + name) })
		u, err := url.Parse(testenv.MySQLURL(t))
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/" + name
		return u.String()
	}
	return "sqlite://" + filepath.Join(t.TempDir(), "dl.db")
}

func openStoredTest(t *testing.T, u string) (store.Store, *deadletter.Store) {
	t.Helper()
	st, err := storeurl.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	s, err := deadletter.New(st)
	if err != nil {
		t.Fatal(err)
	}
	return st, s
}

// runCLIInput runs a fresh command tree with stdin.
func runCLIInput(stdin string, args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	rootCmd := newRootCommand()
	rootCmd.SetOut(&out)
	rootCmd.SetErr(&errOut)
	rootCmd.SetIn(strings.NewReader(stdin))
	rootCmd.SetArgs(args)
	err = rootCmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

type storedSnapshot struct {
	Rows  []store.DeadLetterRow
	Audit []store.DeadLetterAudit
}

func snapshotStored(t *testing.T, st store.Store) storedSnapshot {
	t.Helper()
	ctx := context.Background()
	tbl := store.DeadLetterTable{Table: deadletter.DefaultTable}
	rows, err := st.Executor().DeadLetterList(ctx, tbl, store.DeadLetterFilter{})
	if err != nil {
		t.Fatal(err)
	}
	audit, err := st.Executor().DeadLetterAuditList(ctx, tbl, 0)
	if err != nil {
		t.Fatal(err)
	}
	return storedSnapshot{rows, audit}
}

// TestDLQStoredCommands runs the read commands and the dry runs, refused
// confirmations and a confirmed group delete of "hexeract dlq stored" on
// each driver: the reads leave the tables exactly as they were.
func TestDLQStoredCommands(t *testing.T) {
	for _, d := range []store.Dialect{store.Postgres, store.MySQL, store.SQLite} {
		t.Run(string(d), func(t *testing.T) { testDLQStoredCommands(t, d) })
	}
}

func testDLQStoredCommands(t *testing.T, dialect store.Dialect) {
	ctx := context.Background()
	u := storedURL(t, dialect)
	// Before the tables exist: an error naming the fix, and nothing created.
	_, _, err := runCLIInput("", "dlq", "stored", "list", "--database-url", u)
	if err == nil || !strings.Contains(err.Error(), "Migrate") {
		t.Fatalf("list without the table: %v", err)
	}
	st, s := openStoredTest(t, u)
	if status, err := s.SchemaStatus(ctx); err != nil || !status[0].Pending() {
		t.Fatalf("list created the table: %+v %v", status, err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for _, r := range []struct{ id, topic, handler, typ, err string }{
		{"o1", "orders", "ship", "*errors.errorString", "db down"},
		{"o2", "orders", "ship", "*errors.errorString", "db down"},
		{"o3", "orders", "bill", "panic", "panic: nil map"},
		{"p1", "payments", "charge", "*net.OpError", "dial tcp: timeout"},
	} {
		if err := s.Write(ctx, storetest.DeadLetterRecord(r.id, r.topic, r.handler, r.typ, r.err, now)); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.List(ctx, deadletter.Filter{})
	if err != nil || len(all) != 4 {
		t.Fatalf("seed: %d, %v", len(all), err)
	}
	before := snapshotStored(t, st)
	db := []string{"--database-url", u}
	for _, c := range []struct {
		args  []string
		stdin string
		want  string
		fails bool
	}{
		{args: []string{"list"}, want: "4 dead letter(s) in hexeract_dead_letters"},
		{args: []string{"list", "--topic", "orders", "--error", "DB DOWN"}, want: "2 dead letter(s)"},
		{args: []string{"list", "--limit", "1", "--after", strconv.FormatInt(all[0].ID, 10)}, want: "o2"},
		{args: []string{"list", "--json", "--handler", "charge"}, want: `"uuid":"p1"`},
		{args: []string{"list", "--since", "1h", "--until", "-1h", "--fault-type", "panic"}, want: "1 dead letter(s)"},
		{args: []string{"counts"}, want: "orders    3"},
		{args: []string{"groups"}, want: "*errors.errorString@ship"},
		{args: []string{"show", strconv.FormatInt(all[2].ID, 10)}, want: "panic: nil map"},
		{args: []string{"show", "999999"}, fails: true, want: "no such dead letter"},
		{args: []string{"audit"}},
		{args: []string{"retry", "--all", "--dry-run"}, want: "would retry 4 dead letter(s)"},
		{args: []string{"delete", "--topic", "orders", "--dry-run"}, want: "would delete 3 dead letter(s)"},
		{args: []string{"edit", strconv.FormatInt(all[0].ID, 10), "--payload", "{}", "--retry", "--dry-run"}, want: "would edit+retry 1"},
		{args: []string{"delete", "--all"}, stdin: "", fails: true, want: "not confirmed"},
		{args: []string{"delete", "--all"}, stdin: "n\n", fails: true, want: "not confirmed"},
		{args: []string{"delete"}, fails: true, want: "say which dead letters"},
		{args: []string{"delete", "--all", "--topic", "x"}, fails: true, want: "--all selects every"},
		{args: []string{"delete", "1", "--topic", "x"}, fails: true, want: "give one of"},
	} {
		out, errOut, err := runCLIInput(c.stdin, append(append([]string{"dlq", "stored"}, c.args...), db...)...)
		if (err != nil) != c.fails {
			t.Fatalf("%v: err = %v\nstdout:\n%s\nstderr:\n%s", c.args, err, out, errOut)
		}
		text := out + errOut
		if err != nil {
			text += err.Error()
		}
		if !strings.Contains(text, c.want) {
			t.Fatalf("%v: output does not contain %q:\n%s", c.args, c.want, text)
		}
		if after := snapshotStored(t, st); !reflect.DeepEqual(before, after) {
			t.Fatalf("%v changed the dead-letter tables:\nbefore %+v\nafter  %+v", c.args, before, after)
		}
	}
	// A confirmed delete of one group: one audit line, printed and stored.
	out, _, err := runCLIInput("yes\n", append([]string{"dlq", "stored", "delete", "--fault-group", "*errors.errorString@ship", "--operator", "ann"}, db...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "ann deleted 2 of 2 dead letter(s)") || !strings.Contains(out, "2 of 2 dead letter(s) deleted") {
		t.Fatalf("delete output:\n%s", out)
	}
	left, _ := s.List(ctx, deadletter.Filter{})
	if len(left) != 2 {
		t.Fatalf("%d left after deleting a group of 2 of 4", len(left))
	}
	audit, _ := s.Audit(ctx, 0)
	if len(audit) != 1 || audit[0].Operator != "ann" || audit[0].Action != "delete" || audit[0].Count != 2 || audit[0].Outcome != "done" {
		t.Fatalf("audit = %+v", audit)
	}
	out, _, err = runCLIInput("", append([]string{"dlq", "stored", "edit", strconv.FormatInt(left[0].ID, 10), "--set", "note=x", "--operator", "bob"}, db...)...)
	if err != nil || !strings.Contains(out, "bob edited 1 of 1") {
		t.Fatalf("edit: %v\n%s", err, out)
	}
	if d, _ := s.Show(ctx, left[0].ID); d.Message.Metadata.Get("note") != "x" {
		t.Fatalf("edit not stored: %v", d.Message.Metadata)
	}
	// A retry writes the dead letters into the outbox of the same store, on
	// every driver.
	if err := outbox.Migrate(ctx, st); err != nil {
		t.Fatal(err)
	}
	if out, _, err := runCLIInput("", append([]string{"dlq", "stored", "retry", "--all", "--yes"}, db...)...); err != nil {
		t.Fatalf("retry on %s: %v\n%s", dialect, err, out)
	}
	ob, err := outbox.New(store.Untyped(st))
	if err != nil {
		t.Fatal(err)
	}
	if stats, err := ob.Stats(ctx); err != nil || stats.Pending != 2 {
		t.Fatalf("outbox after retrying 2 dead letters on %s: %+v, %v", dialect, stats, err)
	}
}

// TestDLQStoredRetrySignal runs the hexeract binary retrying 1,000 stored
// dead letters into the PostgreSQL outbox and sends it SIGINT (then, in a
// second run, SIGTERM) in the middle: it exits non-zero after printing its
// audit line and summary, and every message is either still dead or in the
// outbox, exactly once, as many in the outbox as the command and the audit
// row say.
func TestDLQStoredRetrySignal(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "hexeract")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) { testDLQStoredRetrySignal(t, bin, sig) })
	}
}

func testDLQStoredRetrySignal(t *testing.T, bin string, sig syscall.Signal) {
	ctx := context.Background()
	u := storedURL(t, store.Postgres)
	_, s := openStoredTest(t, u)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := outbox.Migrate(ctx, postgres.New(pool)); err != nil {
		t.Fatal(err)
	}
	const n = 1000
	now := time.Now()
	for i := range n {
		if err := s.Write(ctx, storetest.DeadLetterRecord(fmt.Sprintf("m-%04d", i), "orders", "ship", "t", "boom", now)); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "dlq", "stored", "retry", "--all", "--yes", "-q", "--operator", "sig", "--database-url", u)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = os.Environ()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	count := func(sql string) int {
		var c int
		if err := pool.QueryRow(ctx, sql).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	testenv.WaitFor(t, 60*time.Second, "the retry to be under way", func() bool { return count("SELECT count(*) FROM "+outbox.DefaultTable) >= 100 })
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("exit: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	m := regexp.MustCompile(`(\d+) of 1000 dead letter\(s\) retried`).FindStringSubmatch(stdout.String())
	if m == nil || !strings.Contains(stderr.String(), "interrupted after") || !strings.Contains(stdout.String(), "audit #") {
		t.Fatalf("no summary:\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	retried, _ := strconv.Atoi(m[1])
	if retried == 0 || retried == n {
		t.Fatalf("the signal did not land mid-retry: %d of %d retried", retried, n)
	}
	seen := map[string]int{}
	for _, q := range []string{"SELECT id FROM " + outbox.DefaultTable, "SELECT message_id FROM " + deadletter.DefaultTable} {
		rows, err := pool.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			seen[id]++
		}
		rows.Close()
	}
	for i := range n {
		if id := fmt.Sprintf("m-%04d", i); seen[id] != 1 {
			t.Errorf("%s found %d times in the outbox and the dead-letter table", id, seen[id])
		}
	}
	if c := count("SELECT count(*) FROM " + outbox.DefaultTable); c != retried {
		t.Errorf("%d outbox rows, the command said %d", c, retried)
	}
	audit, err := s.Audit(ctx, 0)
	if err != nil || len(audit) != 1 || audit[0].Count != int64(retried) || audit[0].Outcome != "interrupted" || audit[0].Operator != "sig" {
		t.Fatalf("audit = %+v, %v", audit, err)
	}
	t.Logf("interrupted after %d of %d; stderr: %s", retried, n, stderr.String())
}

// TestDLQStoredListPages lists more dead letters than one page holds, with
// and without --limit.
func TestDLQStoredListPages(t *testing.T) {
	ctx := context.Background()
	u := storedURL(t, store.SQLite)
	_, s := openStoredTest(t, u)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 1203
	for i := range n {
		if err := s.Write(ctx, storetest.DeadLetterRecord(fmt.Sprintf("m-%04d", i), "orders", "ship", "t", "boom", time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	for limit, want := range map[string]int{"0": n, "501": 501, "1000": 1000} {
		out, _, err := runCLIInput("", "dlq", "stored", "list", "--json", "--limit", limit, "--database-url", u)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != want || !strings.Contains(lines[len(lines)-1], fmt.Sprintf(`"uuid":"m-%04d"`, want-1)) {
			t.Fatalf("--limit %s: %d lines, last %s; want %d", limit, len(lines), lines[len(lines)-1], want)
		}
	}
}
