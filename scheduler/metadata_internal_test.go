package scheduler

import (
	"testing"
	"time"

	"github.com/hexeract/hexeract/router"
)

// A row postponed by an earlier version holds its refusal count as a JSON
// number: the message keeps its envelope at hand-off, and the count is
// dropped as before.
func TestDueMessageReadsOldRefusalCounts(t *testing.T) {
	raw := []byte(`{"ce_type":"test.reminder","ce_id":"r-1","` + keyAttempts + `":3,"` + keyLastError + `":"too large","x":{"a":[1]},"n":null}`)
	msg := dueMessage("r-1", []byte(`{}`), raw, time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC))
	md := msg.Metadata
	if md.Get(router.KeyType) != "test.reminder" || md.Get(router.KeyID) != "r-1" || md.Get(router.KeyMetadataError) != "" {
		t.Fatalf("metadata %v: want the envelope kept", md)
	}
	if _, ok := md[keyAttempts]; ok {
		t.Errorf("metadata %v: the refusal count is bookkeeping, not for the handler", md)
	}
	if md.Get("x") != `{"a":[1]}` || md.Get("n") != "" {
		t.Errorf("odd values %q, %q: want JSON text and empty", md.Get("x"), md.Get("n"))
	}
}

// Metadata stored as JSON null hands off as an empty envelope plus the due
// time, not a panic.
func TestDueMessageWithNullMetadata(t *testing.T) {
	msg := dueMessage("r-2", []byte(`{}`), []byte(`null`), time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC))
	if msg.Metadata.Get(router.KeyDueAt) == "" || len(msg.Metadata) != 1 {
		t.Fatalf("metadata %v: want only the due time", msg.Metadata)
	}
}
