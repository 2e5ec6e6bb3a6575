package saga_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/saga"
)

type Rearm struct {
	ID    string
	After time.Duration
	Fail  bool
}

func (Rearm) MessageType() string { return "test.timer.rearm" }

type Ring struct{ N int }

func (Ring) MessageType() string { return "test.timer.ring" }

type Timer struct{ Armed int }

// A timeout scheduled again replaces the pending one: only the last fires.
// A timeout scheduled in a transition that fails the saga is never written.
func TestTimeoutReplacedAndDroppedOnFailure(t *testing.T) {
	backends(t, func(t *testing.T, f *fixture) {
		app, _ := f.newApp(appConfig{relay: true, scheduler: true})
		var mu sync.Mutex
		var rang []int
		def := saga.Define[Timer]("timer")
		rearm := func(c *saga.Context[Timer], s *Timer, e Rearm) error {
			s.Armed++
			c.Timeout(e.After, Ring{N: s.Armed})
			if e.Fail {
				c.Fail(errors.New("stop"))
			}
			return nil
		}
		saga.StartedBy(def, func(e Rearm) string { return e.ID }, rearm)
		saga.OnTimeout(def, func(c *saga.Context[Timer], s *Timer, r Ring) error {
			mu.Lock()
			rang = append(rang, r.N)
			mu.Unlock()
			c.Complete()
			return nil
		})
		must(t, saga.Register(app, def, f.store, f.opts(saga.WithRetention(time.Hour))...))
		testenv.StartApp(t, app)

		publish(t, app, Rearm{ID: "t-1", After: 300 * time.Millisecond})
		eventually(t, 5*time.Second, "armed once", func() bool { in := f.instance("timer", "t-1"); return in != nil && in.Version == 1 })
		publish(t, app, Rearm{ID: "t-1", After: 600 * time.Millisecond})
		eventually(t, 10*time.Second, "the timer rang", func() bool {
			in := f.instance("timer", "t-1")
			return in != nil && in.Status == saga.Completed
		})
		time.Sleep(500 * time.Millisecond)
		mu.Lock()
		if len(rang) != 1 || rang[0] != 2 {
			t.Fatalf("timeouts handled: %v, want only the replacement [2]", rang)
		}
		mu.Unlock()

		publish(t, app, Rearm{ID: "t-2", After: 50 * time.Millisecond, Fail: true})
		eventually(t, 5*time.Second, "t-2 failed", func() bool {
			in := f.instance("timer", "t-2")
			return in != nil && in.Status == saga.Failed
		})
		if in := f.instance("timer", "t-2"); len(in.Meta.Timeouts) != 0 {
			t.Fatalf("failed instance keeps timeouts %v", in.Meta.Timeouts)
		}
		if f.pg {
			if n := f.count(f.tables.sched, ""); n != 0 {
				t.Fatalf("%d timeouts scheduled, want none", n)
			}
		}
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		if len(rang) != 1 {
			t.Fatalf("the dropped timeout rang: %v", rang)
		}
	})
}
