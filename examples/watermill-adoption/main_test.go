package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	nc "github.com/nats-io/nats.go"
	amqp091 "github.com/rabbitmq/amqp091-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/hexeract/hexeract/internal/testenv"
)

// TestAdoption runs the service on watermill-nats (AutoProvision) and on
// watermill-amqp: every good order is handled once, invoiced once (through
// the outbox, relayed on the same transport) and entered in the ledger
// once, the three steps of one order in one trace of its own; the two poison orders are dead-lettered after the 3 handler calls
// Watermill's Retry made; the CQRS events reach the typed handler once.
func TestAdoption(t *testing.T) {
	for _, transport := range []string{"nats", "amqp"} {
		t.Run(transport, func(t *testing.T) { testAdoption(t, transport, run) })
	}
}

// TestAdoptionApp runs the service after the last step, as a hexeract.App
// on the same Watermill transports: the same outcome, with the topic naming
// given once to the App, one trace per order.
func TestAdoptionApp(t *testing.T) {
	for _, transport := range []string{"nats", "amqp"} {
		t.Run(transport, func(t *testing.T) { testAdoption(t, transport, runApp) })
	}
}

func testAdoption(t *testing.T, transport string, run func(context.Context, Config) (Report, error)) {
	cfg := Config{
		Transport:   transport,
		NATSURL:     testenv.NATSURL(t),
		AMQPURL:     testenv.AMQPURL(t),
		PostgresURL: testenv.PostgresURL(t),
		Prefix:      "adopt_" + transport + "_" + strings.ToLower(testenv.Suffix()) + "_",
		Orders:      20,
		Shipments:   5,
		Logger:      slog.New(slog.DiscardHandler),
		// A recording provider, so spans have trace ids to compare.
		TracerProvider: sdktrace.NewTracerProvider(),
	}
	rep, err := run(context.Background(), cfg)
	t.Cleanup(func() { cleanup(t, cfg, rep) })
	if err != nil {
		t.Fatal(err)
	}
	flowTraces := map[trace.TraceID]string{}
	for i := 0; i < cfg.Orders; i++ {
		id := fmt.Sprintf("o-%03d", i)
		_, bad := poison(i)
		if bad {
			f, ok := rep.DeadLetters[id]
			if !ok {
				t.Errorf("%s: poison order not dead-lettered", id)
				continue
			}
			if f.Attempts != 3 || rep.OrderCalls[id] != 3 || !f.FirstFailure.Before(f.LastFailure) {
				t.Errorf("%s: dead letter says %d attempts (first %v, last %v) after %d handler calls; want 3",
					id, f.Attempts, f.FirstFailure, f.LastFailure, rep.OrderCalls[id])
			}
			if rep.InvoiceCalls[id] != 0 {
				t.Errorf("%s: poison order was invoiced", id)
			}
			continue
		}
		if rep.OrderCalls[id] != 1 || rep.InvoiceCalls[id] != 1 || rep.LedgerCalls[id] != 1 {
			t.Errorf("%s: handled %d, invoiced %d, in the ledger %d times; want once each",
				id, rep.OrderCalls[id], rep.InvoiceCalls[id], rep.LedgerCalls[id])
		}
		checkOneTrace(t, id, rep, flowTraces)
	}
	if rep.ForwarderTables != nil && (rep.Forwarded == 0 || !rep.ForwarderDrained) {
		t.Errorf("forwarder: %d orders forwarded, drained %v; want some, drained", rep.Forwarded, rep.ForwarderDrained)
	}
	if len(rep.DeadLetters) != 2 {
		t.Errorf("%d dead letters, want 2: %v", len(rep.DeadLetters), rep.DeadLetters)
	}
	for i := 0; i < cfg.Shipments; i++ {
		if id := fmt.Sprintf("s-%03d", i); rep.ShipmentCalls[id] != 1 {
			t.Errorf("shipment %s handled %d times, want once", id, rep.ShipmentCalls[id])
		}
	}
}

// checkOneTrace checks that the typed handler, the outbox relay's delivery to
// the raw "invoicing" handler and the message that handler returned to the
// raw "ledger" handler ran in one trace for the order id, and that no other
// order's flow ran in it.
func checkOneTrace(t *testing.T, id string, rep Report, seen map[trace.TraceID]string) {
	t.Helper()
	order, invoice, ledger := rep.OrderTraces[id], rep.InvoiceTraces[id], rep.LedgerTraces[id]
	if !order.IsValid() || order != invoice || order != ledger {
		t.Errorf("%s: traces typed handler %s, invoicing %s, ledger %s; want one valid trace for the flow", id, order, invoice, ledger)
		return
	}
	if other, ok := seen[order]; ok && other != id {
		t.Errorf("%s and %s ran in the same trace %s; want one trace per flow", other, id, order)
	}
	seen[order] = id
}

// cleanup removes the run's streams, exchanges, queues and tables.
func cleanup(t *testing.T, cfg Config, rep Report) {
	switch cfg.Transport {
	case "nats":
		conn, err := nc.Connect(cfg.NATSURL)
		if err != nil {
			t.Logf("cleanup: %v", err)
			return
		}
		defer conn.Close()
		js, _ := conn.JetStream()
		for _, topic := range rep.Topics {
			_ = js.DeleteStream(topic)
		}
	case "amqp":
		conn, err := amqp091.Dial(cfg.AMQPURL)
		if err != nil {
			t.Logf("cleanup: %v", err)
			return
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			return
		}
		for _, topic := range rep.Topics {
			_, _ = ch.QueueDelete(topic+"_service", false, false, false)
			_ = ch.ExchangeDelete(topic, false, false)
		}
	}
	pool, err := pgxpool.New(context.Background(), cfg.PostgresURL)
	if err != nil {
		return
	}
	defer pool.Close()
	for _, table := range rep.Tables {
		_, _ = pool.Exec(context.Background(), fmt.Sprintf(`DROP TABLE IF EXISTS %s, %s_dead, %s_delivered`, table, table, table))
		_, _ = pool.Exec(context.Background(), `DELETE FROM hexeract_schema_migrations WHERE component = $1`, "outbox:"+table)
	}
	for _, table := range rep.ForwarderTables {
		_, _ = pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+table)
	}
}
