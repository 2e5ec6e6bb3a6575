package saga_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/saga"
)

type Note struct{ Text string }

// PostgreSQL's jsonb cannot keep a NUL character (\u0000) in a string.
// State holding one is refused the same way on both stores: at once
// (permanent, no pointless retries), dead-lettered with an error that names
// the instance and the cause. A `\u0000` that is only text is kept, and a NUL in a failure reason is
// replaced.
func TestStateWithNULIsRefusedOnBothStores(t *testing.T) {
	backends(t, func(t *testing.T, f *fixture) {
		app, ps := f.newApp(appConfig{})
		def := saga.Define[Note]("notes")
		saga.StartedBy(def, func(e TripRequested) string { return e.TripID[:1] },
			func(c *saga.Context[Note], s *Note, e TripRequested) error {
				s.Text = e.TripID
				return nil
			})
		saga.Handles(def, func(e TripStep) string { return e.TripID },
			func(c *saga.Context[Note], s *Note, e TripStep) error {
				c.Fail(errors.New(e.Step))
				return nil
			})
		must(t, saga.Register(app, def, f.store, f.opts(saga.WithRetention(time.Hour))...))
		dead := subscribe(t, ps, "test.trip.requested.dlq")
		testenv.StartApp(t, app)
		publish(t, app, TripRequested{TripID: `a\u0000 is text`})
		eventually(t, 10*time.Second, "the text kept", func() bool { return f.instance("notes", "a") != nil })
		publish(t, app, TripRequested{TripID: "b\x00c"})
		m := waitMsg(t, dead, 10*time.Second)
		if e := m.Metadata.Get(router.KeyFaultError); m.Metadata.Get(router.KeyFaultAttempts) != "1" ||
			!strings.Contains(e, `key "b"`) || !strings.Contains(e, "NUL") {
			t.Fatalf("dead letter: attempts %s, error %q", m.Metadata.Get(router.KeyFaultAttempts), e)
		}
		if f.instance("notes", "b") != nil {
			t.Fatal("the state with a NUL was saved")
		}
		// A failure reason is only diagnostic: its NUL is replaced.
		publish(t, app, TripStep{TripID: "a", Step: "bad\x00reason"})
		eventually(t, 10*time.Second, "a failed", func() bool {
			in := f.instance("notes", "a")
			return in != nil && in.Status == saga.Failed
		})
		if got := f.instance("notes", "a").Meta.Failure; got != "bad\uFFFDreason" {
			t.Fatalf("failure reason %q", got)
		}
	})
}
