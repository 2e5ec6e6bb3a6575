package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hexeract/hexeract/examples/internal/exampletest"
	"github.com/hexeract/hexeract/internal/testenv"
)

// TestRun runs the example as `go run` does with no database configured
// (SQLite in a temporary file) on the in-memory transport. Every way to a
// PostgreSQL is pointed at a closed port, and the process's sockets are
// watched: the run opens no PostgreSQL connection.
func TestRun(t *testing.T) {
	port := exampletest.NoPostgres(t)
	pgSockets := exampletest.PostgresSockets(t, port)
	testRun(t, os.Getenv("HEXERACT_DATABASE_URL"), "")
	if n := pgSockets(); n != 0 {
		t.Fatalf("the run opened %d PostgreSQL connections, want none", n)
	}
}

// TestRunPostgres runs the example on PostgreSQL.
func TestRunPostgres(t *testing.T) { testRun(t, testenv.PostgresURL(t), "") }

// TestRunMariaDB runs the example on MariaDB, in a database of its own.
func TestRunMariaDB(t *testing.T) { testRun(t, exampletest.MariaDBURL(t), "") }

// TestRunRabbitMQ runs the example on RabbitMQ (a consumer group of its
// own, whose queues are removed afterwards), on SQLite.
func TestRunRabbitMQ(t *testing.T) { testRun(t, "", testenv.AMQPGroupURL(t, "example-scheduler")) }

func testRun(t *testing.T, dbURL, transportURL string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out strings.Builder
	if err := run(ctx, &out, dbURL, transportURL); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	want := `scheduled a reminder for inv-1 in 500ms
reminder for inv-1 delivered, not early: true
cron heartbeat fired for a whole second: true
charge c-1 succeeded on handler call 3 after 1 redelivery
refund r-1 dead-lettered after 3 rounds (hexeract_fault_error: refund provider rejected r-1 (call 6))
  round 1: 2 attempts, refund provider rejected r-1 (call 2)
  round 2: 2 attempts, refund provider rejected r-1 (call 4)
  round 3: 2 attempts, refund provider rejected r-1 (call 6)
scheduler example done
`
	if out.String() != want {
		t.Fatalf("output\n%s\nwant\n%s", out.String(), want)
	}
}
