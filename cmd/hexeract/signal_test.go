package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/outbox"
)

// buildCLI builds the hexeract binary into a temporary directory.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hexeract")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestInterruptOutboxReplay runs the built binary on a replay of 20,000
// dead rows, one row per transaction, sends it SIGINT half way and checks
// that it stops cleanly: exit status 130, a summary whose count is exactly
// what moved, and every message in exactly one of the two tables (nothing
// lost, nothing duplicated).
func TestInterruptOutboxReplay(t *testing.T) {
	url := testenv.PostgresURL(t)
	pool := testenv.Postgres(t)
	ctx := context.Background()
	table := "cli_sig_" + testenv.Suffix()
	t.Cleanup(func() {
		_, _ = pool.Exec(ctx, fmt.Sprintf(`DROP TABLE IF EXISTS %s, %s_dead, %s_delivered`, table, table, table))
		_, _ = pool.Exec(ctx, `DELETE FROM hexeract_schema_migrations WHERE component = $1`, "outbox:"+table)
	})
	if err := outbox.Migrate(ctx, pool, outbox.WithTable(table)); err != nil {
		t.Fatal(err)
	}
	const total = 20000
	if _, err := pool.Exec(ctx, `INSERT INTO `+table+`_dead (seq, id, topic, metadata, payload, attempts, created_at)
		SELECT g, 'm-' || g, 'orders', '{}', '\x7b7d', 5, now() FROM generate_series(1, $1) g`, total); err != nil {
		t.Fatal(err)
	}
	bin := buildCLI(t)

	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "outbox", "dead", "replay", "--all", "--batch", "1", "--table", table, "--database-url", url)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Interrupt once some rows have moved, well before the end.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var moved int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&moved); err != nil {
			t.Fatal(err)
		}
		if moved >= 100 {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("the replay moved %d rows in 60 s\nstderr: %s", moved, stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("hexeract did not stop within 30 s of SIGINT\nstdout: %s\nstderr: %s", stdout.String(), stderr.String())
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitInterrupted {
		t.Fatalf("exit: %v, want status %d\nstdout: %s\nstderr: %s", err, exitInterrupted, stdout.String(), stderr.String())
	}
	m := regexp.MustCompile(`replayed (\d+) dead rows of ` + table).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no summary on stdout:\n%s\nstderr: %s", stdout.String(), stderr.String())
	}
	reported, _ := strconv.Atoi(m[1])
	if !strings.Contains(stdout.String(), "interrupted:") || !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("the output does not say the command was interrupted:\nstdout: %s\nstderr: %s", stdout.String(), stderr.String())
	}
	var pending, dead, all, distinct int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM `+table+`), (SELECT count(*) FROM `+table+`_dead),
		count(*), count(DISTINCT id) FROM (SELECT id FROM `+table+` UNION ALL SELECT id FROM `+table+`_dead) u`).
		Scan(&pending, &dead, &all, &distinct); err != nil {
		t.Fatal(err)
	}
	t.Logf("interrupted after %d of %d rows; summary says %d", pending, total, reported)
	if reported != pending {
		t.Errorf("the summary says %d rows replayed, the outbox holds %d", reported, pending)
	}
	if pending >= total || pending+dead != total || all != total || distinct != total {
		t.Errorf("pending %d + dead %d, %d rows with %d distinct ids; want %d in all, each once, and the replay stopped early",
			pending, dead, all, distinct, total)
	}
}
