package main

import (
	"context"
	"testing"

	"github.com/hexeract/hexeract/examples/internal/exampletest"
	"github.com/hexeract/hexeract/internal/testenv"
)

// TestExampleRuns runs the example with no database configured: SQLite in
// a temporary file, on the in-memory transport, opening no PostgreSQL
// connection.
func TestExampleRuns(t *testing.T) {
	port := exampletest.NoPostgres(t)
	pgSockets := exampletest.PostgresSockets(t, port)
	if err := run(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if n := pgSockets(); n != 0 {
		t.Fatalf("the run opened %d PostgreSQL connections, want none", n)
	}
}

// TestExampleRunsPostgres runs the example on PostgreSQL.
func TestExampleRunsPostgres(t *testing.T) {
	t.Setenv("HEXERACT_DATABASE_URL", testenv.PostgresURL(t))
	if err := run(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
}

// TestExampleRunsMariaDB runs the example on MariaDB, in a database of its
// own.
func TestExampleRunsMariaDB(t *testing.T) {
	t.Setenv("HEXERACT_DATABASE_URL", exampletest.MariaDBURL(t))
	if err := run(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
}

// TestExampleRunsRabbitMQ runs the example on RabbitMQ (a consumer group of
// its own, whose queues are removed afterwards).
func TestExampleRunsRabbitMQ(t *testing.T) {
	t.Setenv("HEXERACT_DATABASE_URL", testenv.PostgresURL(t))
	if err := run(context.Background(), testenv.AMQPGroupURL(t, "example-outbox")); err != nil {
		t.Fatal(err)
	}
}
