package saga_test

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/saga"
)

// A compensation message is only the trigger of the instance's current
// step: a stale one (here a redelivery from a previous instance of the same
// key, which finished and was deleted) runs the step the instance holds,
// never the payload of the old one.
func TestStaleCompensationMessageRunsTheStoredStep(t *testing.T) {
	backends(t, func(t *testing.T, f *fixture) {
		app, ps := f.newApp(appConfig{relay: true})
		var mu sync.Mutex
		var undone []string
		block := true
		def := tripSaga("trips", func(c *saga.Context[Trip], u Undo) error {
			mu.Lock()
			defer mu.Unlock()
			if u.What == "new" && block {
				return errors.New("hotel API down")
			}
			undone = append(undone, u.What)
			return nil
		})
		must(t, saga.Register(app, def, f.store, f.opts()...))
		steps := subscribe(t, ps, "hexeract.saga.compensate")
		dead := subscribe(t, ps, "hexeract.saga.compensate.dlq")
		testenv.StartApp(t, app)

		// The first instance of t-9 fails, compensates and is deleted.
		publish(t, app, TripRequested{TripID: "t-9"})
		eventually(t, 10*time.Second, "t-9 started", func() bool { return f.instance("trips", "t-9") != nil })
		publish(t, app, TripStep{TripID: "t-9", Step: "old"})
		eventually(t, 10*time.Second, "old booked", func() bool {
			in := f.instance("trips", "t-9")
			return in != nil && len(in.Meta.Compensations) == 2
		})
		publish(t, app, TripStep{TripID: "t-9", Step: "fail"})
		old := waitMsg(t, steps, 10*time.Second) // step 1: Undo{old}
		eventually(t, 10*time.Second, "the first t-9 compensated and deleted", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(undone) == 1 && f.instance("trips", "t-9") == nil
		})

		// A second instance of t-9 is stuck compensating its step 1.
		publish(t, app, TripRequested{TripID: "t-9"})
		eventually(t, 10*time.Second, "t-9 started again", func() bool { return f.instance("trips", "t-9") != nil })
		publish(t, app, TripStep{TripID: "t-9", Step: "new"})
		eventually(t, 10*time.Second, "new booked", func() bool {
			in := f.instance("trips", "t-9")
			return in != nil && len(in.Meta.Compensations) == 2
		})
		publish(t, app, TripStep{TripID: "t-9", Step: "fail"})
		waitMsg(t, dead, 10*time.Second)

		// The first instance's step message arrives once more.
		mu.Lock()
		block = false
		mu.Unlock()
		again := message.NewMessage(router.NewID(), old.Payload)
		for k, v := range old.Metadata {
			again.Metadata.Set(k, v)
		}
		again.Metadata.Set(router.KeyID, again.UUID)
		must(t, ps.Publish("hexeract.saga.compensate", again))
		eventually(t, 10*time.Second, "t-9 compensated again", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(undone) == 2
		})
		mu.Lock()
		defer mu.Unlock()
		if want := []string{"old", "new"}; !slices.Equal(undone, want) {
			t.Fatalf("compensations run: %v, want %v", undone, want)
		}
	})
}
