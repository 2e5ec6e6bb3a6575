package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/router"
)

// Run hands due messages to the sink and fires the registered cron jobs until ctx is
// cancelled; it then returns nil. It satisfies hexeract.Worker, so
// hexeract.WithWorker(s) runs it beside the App's router. Run may be called
// once per Scheduler.
//
// Run does not migrate: on a table that does not exist it returns an error
// saying to run `hexeract migrate up` or [Scheduler.Migrate] first.
//
// The poller sleeps until the earliest pending due time (read from the
// database clock), wakes early when Schedule or Reschedule announce an
// earlier message (a NOTIFY sent on commit on PostgreSQL, an in-process
// signal on the other drivers, which other processes' pollers see at their
// next look), and never sleeps longer than the poll interval. Errors from the database are logged
// and retried with backoff; Run does not stop on them.
//
// When the sink fails a batch, the batch is handed off again one message at
// a time; a message the sink refuses on its own is postponed by 1 s,
// doubling with each refusal up to 1 min, so it never holds back the
// messages due after it. The refusals are counted in the stored message's
// metadata (removed before the hand-off). There is no dead table: a message
// the sink refuses for good is retried every minute, with an error logged
// each time; cancel it with [Scheduler.Cancel] or `hexeract scheduler cancel`.
func (s *Scheduler[TTx]) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("scheduler: Run called twice")
	}
	s.running = true
	hasJobs := len(s.jobs) > 0
	s.mu.Unlock()

	ok, err := s.drv.Executor().SchedulerTableExists(ctx, s.t.st)
	if err == nil && !ok {
		err = fmt.Errorf("table %s does not exist: run `hexeract migrate up` (or call Scheduler.Migrate) before Scheduler.Run", s.t.name)
	}
	if err != nil {
		if s.cron != nil {
			_ = s.cron.Shutdown()
		}
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("scheduler: %w", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.listen(ctx) }()
	if hasJobs {
		wg.Add(1)
		go func() { defer wg.Done(); s.keepLease(ctx) }()
		s.cron.Start()
	}
	s.poll(ctx)
	if s.cron != nil {
		_ = s.cron.Shutdown()
	}
	wg.Wait()
	if hasJobs && s.stopHook == nil {
		// Hand the lease over at once instead of letting it expire.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		s.elector.release(rctx)
		cancel()
	}
	return nil
}

// wake tells the poller that a message due at due (zero: unknown) was
// scheduled. Announcements are merged: the poller sees the earliest.
func (s *Scheduler[TTx]) wake(due time.Time) {
	s.wakeMu.Lock()
	if due.IsZero() {
		s.wakeAt = time.Unix(0, 0) // "look now"
	} else if s.wakeAt.IsZero() || due.Before(s.wakeAt) {
		s.wakeAt = due
	}
	s.wakeMu.Unlock()
	select {
	case s.wakeCh <- struct{}{}:
	default:
	}
}

// announced returns and clears the earliest announced due time.
func (s *Scheduler[TTx]) announced() time.Time {
	s.wakeMu.Lock()
	defer s.wakeMu.Unlock()
	at := s.wakeAt
	s.wakeAt = time.Time{}
	return at
}

// poll is the claim loop. It sleeps until the next due time, then starts a
// hand-off transaction; as soon as that transaction's claim statement has
// returned (the rows are locked and the next due time is known) the loop goes
// on, while the batch is handed to the sink and committed in the background.
// Up to cfg.workers hand-offs are in flight at once, so a slow commit does not
// delay the messages that fall due meanwhile, and a backlog is drained by
// several transactions in parallel.
func (s *Scheduler[TTx]) poll(ctx context.Context) {
	slots := make(chan struct{}, s.cfg.workers)
	var (
		wg       sync.WaitGroup
		failures atomic.Int64 // hand-offs that failed after their claim
		seen     int64
	)
	defer wg.Wait()
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		claimedCh := make(chan claimResult, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			// A batch in flight when ctx is cancelled is finished (bounded
			// by a timeout), not rolled back: shutdown does not redo work.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if ids, err := s.claim(cctx, claimedCh); err != nil {
				failures.Add(1)
				s.m.errors.Add(cctx, 1, s.m.attrs)
				if ctx.Err() == nil {
					s.cfg.logger.Error("scheduler: hand-off failed; handing the batch off one message at a time",
						"table", s.t.name.String(), "messages", len(ids), "error", err)
					s.isolate(cctx, ids, err)
				}
				s.wake(time.Time{})
			}
		}()
		res := <-claimedCh

		var (
			sleep time.Duration
			next  = res.next
		)
		switch f := failures.Load(); {
		case res.err != nil || f != seen:
			seen = f
			if res.err != nil {
				s.m.errors.Add(ctx, 1, s.m.attrs)
			}
			if res.err != nil && ctx.Err() == nil {
				s.cfg.logger.Error("scheduler: claim failed; retrying", "table", s.t.name.String(), "error", res.err, "retry_in", backoff)
			}
			sleep, next = backoff, nextDue{}
			backoff = min(backoff*2, s.cfg.pollInterval)
		case res.n == s.cfg.batchSize:
			backoff = 50 * time.Millisecond
			continue // more may be due: claim again at once
		default:
			backoff = 50 * time.Millisecond
			sleep = s.cfg.pollInterval
			if !next.at.IsZero() {
				if next.in < sleep {
					sleep = next.in
				} else {
					next = nextDue{} // beyond the poll interval: any announcement is earlier
				}
			}
		}
		if sleep > 0 {
			s.sleep(ctx, sleep, next.at)
		}
	}
}

// claimResult is what a hand-off transaction reports once its claim
// statement has returned.
type claimResult struct {
	n    int     // rows claimed
	next nextDue // earliest pending due time after them
	err  error   // the claim statement failed (nothing claimed)
}

// nextDue is the earliest pending due time a claim saw after the rows it
// claimed: at on the database's timeline, in from the database's now.
type nextDue struct {
	at time.Time // zero: nothing pending
	in time.Duration
}

// sleep waits d, or less when a message due before nextAt is announced.
// Announcements of later messages do not wake the poller: it looks at the
// table at nextAt anyway.
func (s *Scheduler[TTx]) sleep(ctx context.Context, d time.Duration, nextAt time.Time) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			return
		case <-s.wakeCh:
			at := s.announced()
			if at.IsZero() || nextAt.IsZero() || at.Before(nextAt) {
				return
			}
		}
	}
}

type claimed struct {
	id, topic string
	due       time.Time
	msg       *message.Message
}

// claim runs one hand-off transaction: it claims a batch of due messages,
// reports the claim on claimedCh (exactly once), hands the batch to the sink
// and commits. The returned error is a failure after the claim was reported;
// the transaction is then rolled back, the messages stay scheduled, and ids
// lists them in due order.
func (s *Scheduler[TTx]) claim(ctx context.Context, claimedCh chan<- claimResult) (ids []string, err error) {
	reported := false
	report := func(r claimResult) {
		if !reported {
			reported = true
			claimedCh <- r
		}
	}
	defer func() {
		if !reported {
			report(claimResult{err: err})
			err = nil
		}
	}()
	tx, err := s.drv.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	c, err := tx.SchedulerClaim(ctx, s.t.st, s.cfg.batchSize)
	if err != nil {
		return nil, fmt.Errorf("claim from %s: %w", s.t.name, err)
	}
	var next nextDue
	if !c.NextDue.IsZero() {
		next = nextDue{at: c.NextDue, in: c.NextIn}
	}
	batch := make([]claimed, 0, len(c.Rows))
	for _, r := range c.Rows {
		batch = append(batch, claimed{id: r.ID, topic: r.Topic, due: r.DueAt, msg: dueMessage(r.UUID, r.Payload, r.Metadata, r.DueAt)})
	}
	report(claimResult{n: len(batch), next: next})
	if len(batch) == 0 {
		return nil, nil
	}
	// Hand off in due order, one sink call per topic.
	sort.SliceStable(batch, func(i, j int) bool {
		if !batch[i].due.Equal(batch[j].due) {
			return batch[i].due.Before(batch[j].due)
		}
		return batch[i].id < batch[j].id
	})
	byTopic := map[string][]*message.Message{}
	var order []string
	for _, c := range batch {
		if _, ok := byTopic[c.topic]; !ok {
			order = append(order, c.topic)
		}
		byTopic[c.topic] = append(byTopic[c.topic], c.msg)
	}
	ids = make([]string, len(batch))
	for i, c := range batch {
		ids[i] = c.id
	}
	for _, topic := range order {
		if err := s.sink.PublishMessagesWith(ctx, tx, topic, byTopic[topic]...); err != nil {
			return ids, fmt.Errorf("hand off %d due messages for topic %q: %w", len(byTopic[topic]), topic, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return ids, fmt.Errorf("commit hand-off: %w", err)
	}
	s.signalSink()
	s.m.handOff(ctx, batch, time.Now())
	return nil, nil
}

// decodeMetadata reads a row's stored metadata: a JSON object whose values
// are strings, except that rows postponed before the refusal count was
// stored as text hold it as a JSON number; a value that is not a string is
// kept as its JSON text, so one odd value never costs the message its
// envelope.
func decodeMetadata(raw []byte) (message.Metadata, error) {
	md := message.Metadata{}
	if json.Unmarshal(raw, &md) == nil { // the usual case, in one pass
		if md == nil { // stored as JSON null
			md = message.Metadata{}
		}
		return md, nil
	}
	var values map[string]json.RawMessage
	if err := json.Unmarshal(raw, &values); err != nil {
		return nil, err
	}
	md = make(message.Metadata, len(values))
	for k, v := range values {
		var str string
		if json.Unmarshal(v, &str) == nil {
			md[k] = str
		} else {
			md[k] = string(v)
		}
	}
	return md, nil
}

// dueMessage rebuilds a scheduled message for its hand-off: the stored
// metadata without the scheduler's refusal bookkeeping, plus KeyDueAt.
func dueMessage(uuid string, payload, metadata []byte, due time.Time) *message.Message {
	md, err := decodeMetadata(metadata)
	if err != nil {
		// Cannot happen for rows written by Schedule; keep the message
		// deliverable and say what went wrong.
		md = message.Metadata{router.KeyMetadataError: err.Error()}
	}
	delete(md, keyAttempts)
	delete(md, keyLastError)
	md[KeyDueAt] = due.UTC().Format(time.RFC3339Nano)
	msg := message.NewMessage(uuid, payload)
	msg.Metadata = md
	return msg
}

// isolate hands off the messages of a batch whose hand-off failed one at a
// time, each in its own transaction, so that one message the sink refuses
// (a broker that rejects its size, say) does not hold back the others: a
// message refused on its own is postponed (pushBack) and the next one is
// tried. After two refusals in a row the sink is taken to be down and the
// rest of the batch is postponed at once. When the database itself fails,
// isolate stops and the messages stay due, to be claimed again.
func (s *Scheduler[TTx]) isolate(ctx context.Context, ids []string, cause error) {
	if len(ids) == 1 {
		s.pushBack(ctx, ids, cause)
		return
	}
	refusedInARow := 0
	for i, id := range ids {
		if ctx.Err() != nil {
			return
		}
		err := s.handOffOne(ctx, id)
		if err == nil {
			refusedInARow = 0
			continue
		}
		var dbErr databaseError
		if errors.As(err, &dbErr) {
			s.cfg.logger.Warn("scheduler: database error while handing off one at a time; the messages stay due",
				"table", s.t.name.String(), "error", err)
			return
		}
		refusedInARow++
		if refusedInARow == 2 {
			s.pushBack(ctx, ids[i:], err)
			return
		}
		s.pushBack(ctx, []string{id}, err)
	}
}

// databaseError marks a hand-off failure that came from the database, not
// from the sink.
type databaseError struct{ error }

func (e databaseError) Unwrap() error { return e.error }

// handOffOne claims the message id, if it is still due and not claimed by
// another instance, hands it to the sink and commits.
func (s *Scheduler[TTx]) handOffOne(ctx context.Context, id string) error {
	tx, err := s.drv.Begin(ctx)
	if err != nil {
		return databaseError{err}
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	r, ok, err := tx.SchedulerClaimOne(ctx, s.t.st, id)
	if err != nil {
		return databaseError{err}
	}
	if !ok {
		return nil // handed off meanwhile, cancelled or rescheduled
	}
	c := claimed{id: id, topic: r.Topic, due: r.DueAt, msg: dueMessage(r.UUID, r.Payload, r.Metadata, r.DueAt)}
	if err := s.sink.PublishMessagesWith(ctx, tx, r.Topic, c.msg); err != nil {
		return fmt.Errorf("hand off scheduled message %s for topic %q: %w", id, r.Topic, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return databaseError{err}
	}
	s.signalSink()
	s.m.handOff(ctx, []claimed{c}, time.Now())
	return nil
}

// pushBack postpones messages the sink refused, with a backoff that grows
// with each refusal (1 s, doubling, at most 1 min), and records the refusal.
func (s *Scheduler[TTx]) pushBack(ctx context.Context, ids []string, cause error) {
	if err := s.drv.Executor().SchedulerPushBack(ctx, s.t.st, ids, cause.Error()); err != nil {
		s.cfg.logger.Warn("scheduler: could not postpone refused messages; they stay due",
			"table", s.t.name.String(), "messages", len(ids), "error", err)
		return
	}
	s.cfg.logger.Error("scheduler: the sink refused due messages; postponed and retried with backoff",
		"table", s.t.name.String(), "messages", len(ids), "first", ids[0], "error", cause)
}

// listen wakes the poller on every announcement of the table's channel,
// with the due time it carries (zero when unknown), and on every
// (re)connection, since something may have been scheduled while nobody
// listened. The driver reconnects with backoff; while it is down, the poll
// interval bounds how late a newly scheduled message can be.
func (s *Scheduler[TTx]) listen(ctx context.Context) {
	err := s.drv.Executor().SchedulerListen(ctx, s.t.st,
		s.cfg.logger.With("component", "scheduler", "table", s.t.name.String()), func() { s.wake(time.Time{}) }, s.wake)
	if err != nil && ctx.Err() == nil {
		s.cfg.logger.Error("scheduler: cannot listen for announcements; polling only", "table", s.t.name.String(), "error", err)
	}
}

// signalSink tells a sink with a Signal method (the outbox: it wakes the
// relays in this process at once) that a hand-off has committed.
func (s *Scheduler[TTx]) signalSink() {
	if sig, ok := s.sink.(interface{ Signal() }); ok {
		sig.Signal()
	}
}
