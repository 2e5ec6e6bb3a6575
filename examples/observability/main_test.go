package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// TestObservability runs the example and checks both outputs: the spans
// (one JSON object per span from the stdout exporter) hold the producer
// and consumer spans of both topics, all in one trace per order, and the
// Prometheus scrape holds the consumed-messages counter of each handler
// with the messaging attributes as labels.
func TestObservability(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out, ""); err != nil {
		t.Fatal(err)
	}
	type span struct {
		Name        string
		SpanContext struct{ TraceID string }
	}
	names := map[string]int{}
	traces := map[string]bool{}
	var series []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !strings.HasPrefix(line, "{") { // the metric series follow the spans
			series = append(series, line)
			continue
		}
		var s span
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("span line %q: %v", line, err)
		}
		names[s.Name]++
		traces[s.SpanContext.TraceID] = true
	}
	for _, want := range []string{"place order", "send orders.placed", "process orders.placed", "send orders.confirmed", "process orders.confirmed"} {
		if names[want] != 3 {
			t.Errorf("%d spans %q, want 3 (spans: %v)", names[want], want, names)
		}
	}
	if len(traces) != 3 {
		t.Errorf("%d traces, want one per order (3)", len(traces))
	}
	found := 0
	for _, line := range series {
		if strings.HasPrefix(line, "messaging_client_consumed_messages_total{") &&
			strings.Contains(line, `messaging_destination_name="orders.`) && strings.Contains(line, `hexeract_handler_name=`) &&
			strings.HasSuffix(line, " 3") {
			found++
		}
	}
	if found != 2 {
		t.Errorf("%d consumed-messages series with value 3, want 2 (one per handler); series:\n%s", found, strings.Join(series, "\n"))
	}
}
