package scheduler

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
)

// The redelivery history is made of middleware.Fault, the one fault record:
// this compiles only while scheduler.Fault is the same type.
var _ = func(f Fault) middleware.Fault { return f }

// TestFaultHistoryReadsOldRecords: a history written before the fault types
// were merged (the old scheduler.Fault JSON: round, attempts, error, handler,
// topic, at, every field present) still decodes, field for field, so
// messages already waiting in the scheduler table keep their history.
func TestFaultHistoryReadsOldRecords(t *testing.T) {
	msg := message.NewMessage("1", nil)
	msg.Metadata.Set(router.KeyRedeliveryHistory,
		`[{"round":1,"attempts":3,"error":"boom","handler":"h","topic":"t","at":"2026-01-02T03:04:05.000000006Z"},`+
			`{"round":2,"attempts":1,"error":"again","handler":"","topic":"t","at":"2026-01-02T03:05:05Z"}]`)
	h, err := FaultHistory(msg)
	if err != nil {
		t.Fatal(err)
	}
	want := []middleware.Fault{
		{Round: 1, Attempts: 3, Error: "boom", Handler: "h", Topic: "t", At: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)},
		{Round: 2, Attempts: 1, Error: "again", Topic: "t", At: time.Date(2026, 1, 2, 3, 5, 5, 0, time.UTC)},
	}
	if len(h) != len(want) {
		t.Fatalf("history %+v, want %+v", h, want)
	}
	for i := range want {
		if !h[i].At.Equal(want[i].At) {
			t.Errorf("record %d: At = %v, want %v", i, h[i].At, want[i].At)
		}
		h[i].At, want[i].At = time.Time{}, time.Time{}
		if h[i] != want[i] {
			t.Errorf("record %d: %+v, want %+v", i, h[i], want[i])
		}
	}
}
