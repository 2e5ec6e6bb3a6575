package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out strings.Builder
	if err := run(ctx, &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	want := `mediator: placed order o-1 for 30
mediator: audit log has order o-1
bus: orders.placed received order o-1
mediator: order o-1 paid 30 (from bus message payments.received, caused by its orders.placed message: true)
mediator: placed order o-2 for 12
mediator: audit log has order o-2
bus: orders.placed received order o-2
mediator: order o-2 paid 12 (from bus message payments.received, caused by its orders.placed message: true)
mediator: rejected: mediator: invalid main.PlaceOrder: amount must be positive
mediator-bridge done
`
	if out.String() != want {
		t.Fatalf("output\n%s\nwant\n%s", out.String(), want)
	}
}
