package main

import (
	"testing"

	"github.com/hexeract/hexeract/examples/internal/exampletest"
	"github.com/hexeract/hexeract/internal/testenv"
)

// TestRun runs the example end to end as `go run` does with no database
// configured (SQLite in a temporary file) and the in-memory transport: one
// order ships, one is declined and one times out, both releasing their
// stock. Every way to a PostgreSQL is pointed at a closed port, and the
// process's sockets are watched: the run opens no PostgreSQL connection.
func TestRun(t *testing.T) {
	port := exampletest.NoPostgres(t)
	pgSockets := exampletest.PostgresSockets(t, port)
	if err := run(""); err != nil {
		t.Fatal(err)
	}
	if n := pgSockets(); n != 0 {
		t.Fatalf("the run opened %d PostgreSQL connections, want none", n)
	}
}

// TestRunPostgres runs the example on PostgreSQL.
func TestRunPostgres(t *testing.T) {
	t.Setenv("HEXERACT_DATABASE_URL", testenv.PostgresURL(t))
	if err := run(""); err != nil {
		t.Fatal(err)
	}
}

// TestRunMariaDB runs the example on MariaDB, in a database of its own.
func TestRunMariaDB(t *testing.T) {
	t.Setenv("HEXERACT_DATABASE_URL", exampletest.MariaDBURL(t))
	if err := run(""); err != nil {
		t.Fatal(err)
	}
}

// TestRunRabbitMQ runs the example on RabbitMQ (a consumer group of its
// own, whose queues are removed afterwards) and PostgreSQL.
func TestRunRabbitMQ(t *testing.T) {
	t.Setenv("HEXERACT_DATABASE_URL", testenv.PostgresURL(t))
	if err := run(testenv.AMQPGroupURL(t, "example-order-saga")); err != nil {
		t.Fatal(err)
	}
}
