package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/examples/audit-log/audit"
)

// TestAuditLog runs the example in memory: every message a handler took
// is in the audit log once, with its handler's outcome (the invoice its
// handler refuses for good is an error), and the log was flushed by
// App.Close (nothing was flushed before it).
func TestAuditLog(t *testing.T) {
	var out bytes.Buffer
	records, want, err := run(context.Background(), "mem://", &out)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 5 {
		t.Fatalf("the handlers took %d messages, want 5", len(want))
	}
	if !strings.Contains(out.String(), "records before App.Close: 0\n") {
		t.Fatalf("records were flushed before App.Close:\n%s", out.String())
	}
	got := map[string]int{}
	errs := 0
	for _, r := range records {
		got[r.MessageID]++
		if r.Outcome != want[r.MessageID] {
			t.Errorf("record %+v: outcome %q, want %q", r, r.Outcome, want[r.MessageID])
		}
		if r.Topic != r.Type || r.Handler != r.Type {
			t.Errorf("record %+v: topic and handler should be the wire name", r)
		}
		if r.Outcome == audit.OutcomeError {
			errs++
			if !strings.Contains(r.Error, "negative amount -5") {
				t.Errorf("error record %+v does not carry the handler's error", r)
			}
		}
		if r.Duration <= 0 {
			t.Errorf("record %+v has no duration", r)
		}
	}
	for id := range want {
		if got[id] != 1 {
			t.Errorf("message %s is in the audit log %d times, want once", id, got[id])
		}
	}
	if len(records) != len(want) || errs != 1 {
		t.Fatalf("%d records with %d errors, want %d with 1:\n%s", len(records), errs, len(want), out.String())
	}
}

// TestAuditLogInstallsOnce: a Log refuses a second App, and an App
// refuses a second plugin of the same name.
func TestAuditLogInstallsOnce(t *testing.T) {
	l := audit.New(audit.Config{})
	app, err := hexeract.New(hexeract.WithPlugins(l))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if err := app.Install(audit.New(audit.Config{})); err == nil {
		t.Fatal("a second audit-log plugin was installed on the App")
	}
	other, err := hexeract.New()
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.Install(l); err == nil {
		t.Fatal("one Log was installed on two Apps")
	}
}

// TestSinkGetsJSONLines: Close flushes the records to the sink as JSON
// lines.
func TestSinkGetsJSONLines(t *testing.T) {
	var sink bytes.Buffer
	l := audit.New(audit.Config{Sink: &sink})
	app, err := hexeract.New(hexeract.WithPlugins(l))
	if err != nil {
		t.Fatal(err)
	}
	handled := make(chan struct{})
	if err := hexeract.HandleFunc(app, func(context.Context, OrderPlaced) error { close(handled); return nil }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	<-app.Running()
	if err := app.Publish(ctx, OrderPlaced{OrderID: "o"}); err != nil {
		t.Fatal(err)
	}
	<-handled
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	line := sink.String()
	if strings.Count(line, "\n") != 1 || !strings.Contains(line, `"handler":"auditdemo.orders.placed"`) || !strings.Contains(line, `"outcome":"ok"`) {
		t.Fatalf("sink = %q, want one JSON line for the order", line)
	}
}
