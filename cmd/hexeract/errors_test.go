package main

import (
	"strings"
	"testing"

	"github.com/hexeract/hexeract/internal/testenv"
)

// TestExitMessageBadTable: a bad --table is reported with the flag to
// change, not the Go option (WithTable) the library error advises.
func TestExitMessageBadTable(t *testing.T) {
	url := testenv.PostgresURL(t)
	_, _, err := runOutboxCLI(t, "outbox", "status", "--database-url", url, "--table", "bad name!")
	if err == nil {
		t.Fatal("outbox status accepted a bad table name")
	}
	_, _, serr := runSchedulerCLI(t, "scheduler", "list", "--database-url", url, "--table", "x;y")
	if serr == nil {
		t.Fatal("scheduler list accepted a bad table name")
	}
	for _, e := range []error{err, serr} {
		msg := exitMessage(e)
		if strings.Contains(msg, "WithTable") || !strings.Contains(msg, "--table") {
			t.Errorf("exit message %q: want the --table flag, not WithTable", msg)
		}
	}
}
