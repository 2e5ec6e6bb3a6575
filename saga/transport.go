package saga

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/internal/msgtrace"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/scheduler"
	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/postgres"
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

// Outbox is the part of [*outbox.Outbox] a saga on the PostgreSQL store
// writes its messages through, in the transition's transaction.
type Outbox interface {
	PublishMessagesWith(ctx context.Context, ex store.Executor, topic string, msgs ...*message.Message) error
	// Signal wakes the relays of this process after a commit.
	Signal()
}

// Scheduler is the part of [*scheduler.Scheduler] a saga on the PostgreSQL
// store schedules and cancels its timeouts through, in the transition's
// transaction.
type Scheduler interface {
	ScheduleMessagesWith(ctx context.Context, ex store.Executor, at time.Time, topic string, msgs ...*message.Message) ([]string, error)
	CancelWith(ctx context.Context, ex store.Executor, id string) error
}

type pgTransport struct {
	outbox Outbox
	sched  Scheduler
}

func (t *pgTransport) write(ctx context.Context, tx Tx, p *plan) error {
	ptx, ok := tx.(*PostgresTx)
	if !ok {
		return errors.New("saga: the outbox needs the PostgreSQL store")
	}
	if (len(p.sched) > 0 || len(p.cancel) > 0) && t.sched == nil {
		return router.Permanent(errors.New("saga: Timeout needs the durable scheduler; pass saga.WithScheduler to saga.Register"))
	}
	ex := ptx.s.drv.UnwrapTx(pgxTx{ptx.db})
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
		if err := t.outbox.PublishMessagesWith(ctx, postgres.New(ptx.s.pool).ExecutorOn(ptx.db), p.out[i].topic, msgs...); err != nil {
			return fmt.Errorf("saga: outbox: %w", err)
		}
		i = j
	}
	return nil
}

// stop does nothing: the durable scheduler holds the timeouts.
func (t *pgTransport) stop() {}

func (t *pgTransport) committed(p *plan) {
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

// pgxTx presents the transition's DB as a pgx.Tx, so the scheduler's
// PostgreSQL driver can run its statements in it; the runtime, not the
// scheduler, begins and ends the transaction.
type pgxTx struct{ DB }

func (pgxTx) Begin(context.Context) (pgx.Tx, error) {
	return nil, errors.New("saga: nested transaction in the transition's transaction")
}
func (pgxTx) Commit(context.Context) error   { return errors.New("saga: the runtime commits") }
func (pgxTx) Rollback(context.Context) error { return errors.New("saga: the runtime rolls back") }
func (pgxTx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }
func (pgxTx) Prepare(context.Context, string, string) (*pgconn.StatementDescription, error) {
	return nil, errors.New("saga: Prepare in the transition's transaction")
}
func (pgxTx) Conn() *pgx.Conn { return nil }
