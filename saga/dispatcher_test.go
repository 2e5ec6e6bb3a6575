package saga

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hexeract/hexeract"
)

func quietApp(t *testing.T) *hexeract.App {
	t.Helper()
	app, err := hexeract.New(hexeract.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	return app
}

func gcSaga(name string) *Definition[benchState] {
	def := Define[benchState](name)
	StartedBy(def, func(e benchStarted) string { return e.ID },
		func(c *Context[benchState], s *benchState, e benchStarted) error { return nil })
	return def
}

// The sagas' per-App state is attached to its App, not kept in a
// package-level registry: each App has its own, and the App's Close stops
// the in-memory timeouts, so none fires (or keeps the App alive) after it.
func TestDispatcherBelongsToItsApp(t *testing.T) {
	a, b := quietApp(t), quietApp(t)
	for _, app := range []*hexeract.App{a, b} {
		if err := Register(app, gcSaga("gc"), NewMemoryStore()); err != nil {
			t.Fatalf("a saga named gc in each App: %v", err)
		}
	}
	if err := Register(a, gcSaga("gc"), NewMemoryStore()); err == nil {
		t.Fatal("a second saga named gc in the same App should be refused")
	}
	da, okA := hexeract.Attached[*dispatcher](a)
	db, okB := hexeract.Attached[*dispatcher](b)
	if !okA || !okB || da == db {
		t.Fatalf("each App should hold its own dispatcher: %p (%v), %p (%v)", da, okA, db, okB)
	}

	rt, err := register(b, gcSaga("timers"), NewMemoryStore())
	if err != nil {
		t.Fatal(err)
	}
	mt := rt.tr.(*memTransport)
	wm, err := b.NewMessage(t.Context(), TimeoutMessage{Saga: "timers", Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	mt.committed(&plan{sched: []*scheduled{{at: time.Now().Add(time.Hour), topic: "t", msg: wm, id: "1"}}})
	if n := timerCount(mt); n != 1 {
		t.Fatalf("%d timers pending, want 1", n)
	}
	for _, app := range []*hexeract.App{a, b} {
		if err := app.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if n := timerCount(mt); n != 0 {
		t.Fatalf("%d in-memory timeouts still pending after App.Close", n)
	}
	mt.committed(&plan{sched: []*scheduled{{at: time.Now().Add(time.Hour), topic: "t", msg: wm, id: "2"}}})
	if n := timerCount(mt); n != 0 {
		t.Fatalf("a timeout scheduled after App.Close started a timer (%d pending)", n)
	}
}

func timerCount(mt *memTransport) int {
	mt.mu.Lock()
	defer mt.mu.Unlock()
	return len(mt.timers)
}
