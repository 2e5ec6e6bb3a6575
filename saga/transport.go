package saga

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/internal/msgtrace"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/scheduler"
	"github.com/hexeract/hexeract/store"
)

// plan is what one transition sends, schedules and cancels.
type plan struct {
	out    []outgoing
	sched  []*scheduled
	cancel []string // schedule ids
}

type outgoing struct {
	topic string
	msg   *message.Message
}

type scheduled struct {
	at    time.Time
	topic string
	msg   *message.Message // an encoded TimeoutMessage
	typ   string           // wire name of the user's timeout message
	id    string           // scheduler id, set by transport.write
}

// transport carries out a plan: inside the unit of work (write) and after
// it committed (committed).
type transport interface {
	write(ctx context.Context, tx Tx, p *plan) error
	committed(p *plan)
	// stop stops what the transport runs in the background; the App is closing.
	stop()
}

// Outbox is what a saga on the SQL store writes its messages through, in
// the transition's transaction: an outbox.Outbox[TTx] on the same database
// as the store.
type Outbox interface {
	// PublishMessagesWith writes msgs for topic through ex, the
	// transition's transaction.
	PublishMessagesWith(ctx context.Context, ex store.Executor, topic string, msgs ...*message.Message) error
	// Signal wakes the relays of this process after a commit.
	Signal()
}

// Scheduler is what a saga on the SQL store schedules and cancels its
// timeouts through, in the transition's transaction: a
// scheduler.Scheduler[TTx] on the same database as the store.
type Scheduler interface {
	// ScheduleMessagesWith schedules msgs for topic at at through ex and
	// returns their ids.
	ScheduleMessagesWith(ctx context.Context, ex store.Executor, at time.Time, topic string, msgs ...*message.Message) ([]string, error)
	// CancelWith cancels the scheduled message id through ex.
	CancelWith(ctx context.Context, ex store.Executor, id string) error
}

// txTransport writes a plan in the unit of work's driver transaction.
type txTransport struct {
	outbox Outbox
	sched  Scheduler
}

func (t *txTransport) write(ctx context.Context, tx Tx, p *plan) error {
	ex := tx.Executor()
	if ex == nil {
		return errors.New("saga: the outbox needs a store whose units of work are database transactions")
	}
	if (len(p.sched) > 0 || len(p.cancel) > 0) && t.sched == nil {
		return router.Permanent(errors.New("saga: Timeout needs the durable scheduler; pass saga.WithScheduler to saga.Register"))
	}
	for _, id := range p.cancel {
		// Not found: the timeout was handed off already; its token is gone
		// from the state, so it is ignored when it arrives.
		if err := t.sched.CancelWith(ctx, ex, id); err != nil && !errors.Is(err, scheduler.ErrNotFound) {
			return fmt.Errorf("saga: cancel timeout %s: %w", id, err)
		}
	}
	for _, s := range p.sched {
		ids, err := t.sched.ScheduleMessagesWith(ctx, ex, s.at, s.topic, s.msg)
		if err != nil {
			return fmt.Errorf("saga: schedule timeout: %w", err)
		}
		if len(ids) != 1 {
			return fmt.Errorf("saga: schedule timeout: the scheduler returned %d ids for one message", len(ids))
		}
		s.id = ids[0]
	}
	for i := 0; i < len(p.out); {
		j := i + 1
		for j < len(p.out) && p.out[j].topic == p.out[i].topic {
			j++
		}
		msgs := make([]*message.Message, 0, j-i)
		for _, o := range p.out[i:j] {
			msgs = append(msgs, o.msg)
		}
		if err := t.outbox.PublishMessagesWith(ctx, ex, p.out[i].topic, msgs...); err != nil {
			return fmt.Errorf("saga: outbox: %w", err)
		}
		i = j
	}
	return nil
}

// stop does nothing: the durable scheduler holds the timeouts.
func (t *txTransport) stop() {}

func (t *txTransport) committed(p *plan) {
	if len(p.out) > 0 {
		t.outbox.Signal()
	}
}

// memTransport publishes after the commit and keeps timeouts in timers: the
// in-memory mode, for tests.
type memTransport struct {
	app *hexeract.App
	log *slog.Logger

	mu      sync.Mutex
	timers  map[string]*time.Timer
	stopped bool // the App closed: no new timers
}

// stop stops the pending timeouts: in memory they die with the App.
func (t *memTransport) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	for id, tm := range t.timers {
		tm.Stop()
		delete(t.timers, id)
	}
}

func (t *memTransport) write(_ context.Context, _ Tx, p *plan) error {
	for _, s := range p.sched {
		s.id = router.NewID()
	}
	return nil
}

func (t *memTransport) committed(p *plan) {
	for _, o := range p.out {
		if err := t.app.Publisher().Publish(o.topic, o.msg); err != nil {
			t.log.Error("saga: in-memory publish failed after commit; the message is lost", "topic", o.topic, "error", err)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range p.cancel {
		if tm, ok := t.timers[id]; ok {
			tm.Stop()
			delete(t.timers, id)
		}
	}
	if t.stopped {
		if len(p.sched) > 0 {
			t.log.Warn("saga: in-memory timeouts scheduled after the App closed are dropped", "count", len(p.sched))
		}
		return
	}
	for _, s := range p.sched {
		wm, topic, id := s.msg, s.topic, s.id
		wm.SetContext(msgtrace.Detach(wm.Context())) // keep the scheduling step's trace, not its deadline
		t.timers[id] = time.AfterFunc(time.Until(s.at), func() {
			t.mu.Lock()
			delete(t.timers, id)
			t.mu.Unlock()
			if err := t.app.Publisher().Publish(topic, wm); err != nil {
				t.log.Error("saga: in-memory timeout publish failed", "topic", topic, "error", err)
			}
		})
	}
}
