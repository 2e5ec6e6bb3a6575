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
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/adapters"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/store/postgres"
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
	if err := outbox.Migrate(ctx, postgres.New(pool), outbox.WithTable(table)); err != nil {
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

// collect subscribes to topic and records the UUIDs it receives (acked)
// until the returned stop is called; stop returns the UUIDs in arrival order.
func collect(t *testing.T, sub message.Subscriber, topic string) (count func() int, stop func() []string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	msgs, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("subscribe %s: %v", topic, err)
	}
	var mu sync.Mutex
	var ids []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range msgs {
			mu.Lock()
			ids = append(ids, m.UUID)
			mu.Unlock()
			m.Ack()
		}
	}()
	count = func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(ids)
	}
	stop = func() []string {
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), ids...)
	}
	return count, stop
}

// drainUntilIdle waits until count stops growing for idle.
func drainUntilIdle(count func() int, idle, max time.Duration) {
	last, since := -1, time.Now()
	for deadline := time.Now().Add(max); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if n := count(); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= idle {
			return
		}
	}
}

// TestInterruptDLQMoveRabbitMQ runs the built binary on a "dlq move" of
// 3,000 dead letters on RabbitMQ, sends it SIGINT once some have moved and
// checks: exit status 130, a summary whose count is what reached the
// original topic, and every message in exactly one place (moved, or still
// on the dead-letter queue), none lost and none twice.
func TestInterruptDLQMoveRabbitMQ(t *testing.T) {
	url := testenv.AMQPURL(t)
	sfx := testenv.Suffix()
	group, topic := "cli-sig-"+sfx, "cli-sig-orders-"+sfx
	dlqTopic := topic + ".dlq"
	t.Cleanup(func() {
		if err := testenv.DeleteAMQPGroupQueues(url, group); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if err := testenv.DeleteAMQPExchanges(url, sfx+".dlq"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if err := testenv.DeleteAMQPExchanges(url, topic); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	ctx := context.Background()
	tr, err := adapters.Open(ctx, url, adapters.WithGroup(group))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	// Declare the dead-letter queue (a subscription does) on a connection
	// of its own, closed before anything is published, so that it holds
	// no message.
	declarer, err := adapters.Open(ctx, url, adapters.WithGroup(group))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := declarer.Subscriber.Subscribe(ctx, dlqTopic); err != nil {
		t.Fatal(err)
	}
	if err := declarer.Close(); err != nil {
		t.Fatal(err)
	}
	movedCount, stopMoved := collect(t, tr.Subscriber, topic)

	const total = 3000
	all := make(map[string]bool, total)
	for i := range total {
		m := message.NewMessage(fmt.Sprintf("dead-%05d", i), []byte(fmt.Sprintf(`{"n":%d}`, i)))
		m.Metadata.Set(router.KeyFaultTopic, topic)
		m.Metadata.Set(router.KeyFaultError, "rejected")
		if err := tr.Publisher.Publish(dlqTopic, m); err != nil {
			t.Fatal(err)
		}
		all[m.UUID] = true
	}
	bin := buildCLI(t)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "dlq", "move", dlqTopic, "--transport", url, "--group", group, "--quiet", "--wait", "10s")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for movedCount() < 100 {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("%d moved in 60 s\nstdout: %s\nstderr: %s", movedCount(), stdout.String(), stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
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
	m := regexp.MustCompile(`(\d+) dead letter\(s\) moved from ` + regexp.QuoteMeta(dlqTopic)).FindStringSubmatch(stdout.String())
	if m == nil || !strings.Contains(stderr.String(), "interrupted after "+m[1]+" message(s) moved") {
		t.Fatalf("no summary on stdout:\n%s\nstderr: %s", stdout.String(), stderr.String())
	}
	reported, _ := strconv.Atoi(m[1])

	drainUntilIdle(movedCount, 2*time.Second, 30*time.Second)
	moved := stopMoved()
	leftCount, stopLeft := collect(t, tr.Subscriber, dlqTopic)
	drainUntilIdle(leftCount, 2*time.Second, 60*time.Second)
	left := stopLeft()
	t.Logf("interrupted: %d moved (summary %d), %d left on %s", len(moved), reported, len(left), dlqTopic)

	seen := make(map[string]int, total)
	for _, id := range append(moved, left...) {
		seen[id]++
	}
	var lost, twice int
	for id := range all {
		switch seen[id] {
		case 0:
			lost++
		case 1:
		default:
			twice++
		}
	}
	if reported != len(moved) {
		t.Errorf("the summary says %d moved, %d reached %s", reported, len(moved), topic)
	}
	if len(moved) >= total {
		t.Errorf("the move was not interrupted: %d of %d moved", len(moved), total)
	}
	if lost != 0 || twice != 0 || len(seen) != total {
		t.Errorf("%d messages lost, %d in two places, %d distinct ids seen; want every one of %d in exactly one place", lost, twice, len(seen), total)
	}
}
