package main

import (
	"testing"

	"github.com/hexeract/hexeract/internal/testenv"
)

// TestRun runs the example end to end on the test database and the
// in-memory transport: one order ships, one is declined and one times out,
// both releasing their stock.
func TestRun(t *testing.T) {
	t.Setenv("HEXERACT_DATABASE_URL", testenv.PostgresURL(t))
	if err := run(""); err != nil {
		t.Fatal(err)
	}
}

// TestRunRabbitMQ runs the same on RabbitMQ (a consumer group of its own,
// whose queues are removed afterwards).
func TestRunRabbitMQ(t *testing.T) {
	t.Setenv("HEXERACT_DATABASE_URL", testenv.PostgresURL(t))
	if err := run(testenv.AMQPGroupURL(t, "example-order-saga")); err != nil {
		t.Fatal(err)
	}
}
