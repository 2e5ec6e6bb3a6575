package saga

import (
	"io"
	"log/slog"
	goruntime "runtime"
	"testing"
	"time"

	"github.com/hexeract/hexeract"
)

// The per-App dispatcher registry must not keep Apps alive.
func TestDispatcherRegistryDoesNotKeepAppsAlive(t *testing.T) {
	count := func() int {
		n := 0
		dispatchers.Range(func(_, _ any) bool { n++; return true })
		return n
	}
	before := count()
	for range 5 {
		app, err := hexeract.New(hexeract.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		if err != nil {
			t.Fatal(err)
		}
		def := Define[benchState]("gc")
		StartedBy(def, func(e benchStarted) string { return e.ID },
			func(c *Context[benchState], s *benchState, e benchStarted) error { return nil })
		if err := Register(app, def, NewMemoryStore()); err != nil {
			t.Fatal(err)
		}
		_ = app.Close()
	}
	if count() < before+5 {
		t.Fatalf("registry holds %d entries after 5 Apps, want at least %d", count(), before+5)
	}
	for i := 0; i < 50 && count() > before; i++ {
		goruntime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if n := count(); n > before {
		t.Fatalf("registry still holds %d entries for collected Apps", n-before)
	}
}
