package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hexeract/hexeract/internal/testenv"
)

const want = `book: reserved as res-book
lamp: only 3 available
chair: refused (unknown_sku, permanent: true)
slow: no answer within 100ms
checkout: 4 requests, 3 answers, 1 timeout, 1 late reply dropped
`

func check(t *testing.T, transport string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out strings.Builder
	if err := run(ctx, &out, transport); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	if out.String() != want {
		t.Fatalf("output\n%s\nwant\n%s", out.String(), want)
	}
}

func TestRunInMemory(t *testing.T) { check(t, "mem://") }

func TestRunRabbitMQ(t *testing.T) { check(t, testenv.AMQPURL(t)) }

func TestRunNATS(t *testing.T) { check(t, testenv.NATSURL(t)) }

func TestRunKafka(t *testing.T) { check(t, "kafka://"+testenv.Kafka(t)[0]) }
