package main

import (
	"context"
	"testing"

	"github.com/hexeract/hexeract/internal/testenv"
)

// TestExampleRuns runs the example on the in-memory transport.
func TestExampleRuns(t *testing.T) {
	t.Setenv("HEXERACT_DATABASE_URL", testenv.PostgresURL(t))
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
