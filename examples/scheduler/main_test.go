package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hexeract/hexeract/internal/testenv"
)

// TestRun runs the example on the in-memory transport.
func TestRun(t *testing.T) { testRun(t, "") }

// TestRunRabbitMQ runs the example on RabbitMQ (a consumer group of its
// own, whose queues are removed afterwards).
func TestRunRabbitMQ(t *testing.T) { testRun(t, testenv.AMQPGroupURL(t, "example-scheduler")) }

func testRun(t *testing.T, transportURL string) {
	url := testenv.PostgresURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out strings.Builder
	if err := run(ctx, &out, url, transportURL); err != nil {
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
