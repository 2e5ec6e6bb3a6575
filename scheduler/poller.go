package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
)

// Run applies the migrations (unless [WithoutMigrate]), then hands due
// messages to the sink and fires the registered cron jobs until ctx is
// cancelled; it then returns nil. It satisfies hexeract.Worker, so
// hexeract.WithWorker(s) runs it beside the App's router. Run may be called
// once per Scheduler.
//
// The poller sleeps until the earliest pending due time (read from the
// database clock), wakes early when a NOTIFY on the table's channel announces
// an earlier message (sent on commit by Schedule and Reschedule), and never
// sleeps longer than the poll interval. Errors from the database are logged
// and retried with backoff; Run does not stop on them.
func (s *Scheduler) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("scheduler: Run called twice")
	}
	s.running = true
	hasJobs := len(s.jobs) > 0
	s.mu.Unlock()

	if s.cfg.migrate {
		if err := s.Migrate(ctx); err != nil {
			if s.cron != nil {
				_ = s.cron.Shutdown()
			}
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("scheduler: migrate %s: %w", s.t.name, err)
		}
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
func (s *Scheduler) wake(due time.Time) {
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
func (s *Scheduler) announced() time.Time {
	s.wakeMu.Lock()
	defer s.wakeMu.Unlock()
	at := s.wakeAt
	s.wakeAt = time.Time{}
	return at
}

// poll is the claim loop: drain everything due with the configured number of
// concurrent claimers, then sleep until the next due time.
func (s *Scheduler) poll(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		next, err := s.drain(ctx)
		var sleep time.Duration
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.cfg.logger.Error("scheduler: poll failed; retrying", "table", s.t.name.String(), "error", err, "retry_in", backoff)
			sleep, next = backoff, nextDue{}
			backoff = min(backoff*2, s.cfg.pollInterval)
		} else {
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

// nextDue is the earliest pending due time a claim saw after the rows it
// claimed: at on the database's timeline, in from the database's now.
type nextDue struct {
	at time.Time // zero: nothing pending
	in time.Duration
}

func (n nextDue) earlier(o nextDue) nextDue {
	if n.at.IsZero() || (!o.at.IsZero() && o.at.Before(n.at)) {
		return o
	}
	return n
}

// sleep waits d, or less when a message due before nextAt is announced.
// Announcements of later messages do not wake the poller: it looks at the
// table at nextAt anyway.
func (s *Scheduler) sleep(ctx context.Context, d time.Duration, nextAt time.Time) {
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

// drain claims batches with up to cfg.workers concurrent transactions until
// a claim comes back short, and returns the earliest next due time seen.
func (s *Scheduler) drain(ctx context.Context) (nextDue, error) {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     nextDue
	)
	for range s.cfg.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A batch in flight when ctx is cancelled is finished (bounded
			// by a timeout), not rolled back: shutdown does not redo work.
			for ctx.Err() == nil {
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				n, nd, err := s.claim(cctx)
				cancel()
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil && n < s.cfg.batchSize {
					next = next.earlier(nd)
				}
				mu.Unlock()
				if err != nil || n < s.cfg.batchSize {
					return
				}
			}
		}()
	}
	wg.Wait()
	return next, firstErr
}

type claimed struct {
	id, topic string
	due       time.Time
	msg       *message.Message
}

// claim hands one batch of due messages to the sink in the transaction that
// deletes them. It returns the number handed off and the next due time.
func (s *Scheduler) claim(ctx context.Context) (int, nextDue, error) {
	var next nextDue
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, next, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	rows, err := tx.Query(ctx, s.sql.claim, s.cfg.batchSize)
	if err != nil {
		return 0, next, fmt.Errorf("claim from %s: %w", s.t.name, err)
	}
	var batch []claimed
	for rows.Next() {
		var (
			id, topic, uuid *string
			due             *time.Time
			payload         []byte
			metadata        []byte
			in              *float64
		)
		if err := rows.Scan(&id, &topic, &due, &uuid, &payload, &metadata, &in); err != nil {
			rows.Close()
			return 0, next, err
		}
		if id == nil { // the next-due row
			if due != nil && in != nil {
				next = nextDue{at: *due, in: time.Duration(*in * float64(time.Second))}
			}
			continue
		}
		md := message.Metadata{}
		if err := json.Unmarshal(metadata, &md); err != nil {
			// Cannot happen for rows written by Schedule; keep the message
			// deliverable and say what went wrong.
			md = message.Metadata{"hexeract_metadata_error": err.Error()}
		}
		md[KeyDueAt] = due.UTC().Format(time.RFC3339Nano)
		msg := message.NewMessage(*uuid, payload)
		msg.Metadata = md
		batch = append(batch, claimed{id: *id, topic: *topic, due: *due, msg: msg})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, next, fmt.Errorf("claim from %s: %w", s.t.name, err)
	}
	if len(batch) == 0 {
		return 0, next, nil
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
	for _, topic := range order {
		if err := s.sink.PublishMessages(ctx, tx, topic, byTopic[topic]...); err != nil {
			return 0, next, fmt.Errorf("hand off %d due messages for topic %q: %w", len(byTopic[topic]), topic, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, next, fmt.Errorf("commit hand-off: %w", err)
	}
	s.signalSink()
	return len(batch), next, nil
}

// listen holds one connection LISTENing on the table's channel and wakes the
// poller on every notification. It reconnects with backoff; while it is
// down, the poll interval bounds how late a newly scheduled message can be.
func (s *Scheduler) listen(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		s.cfg.logger.Warn("scheduler: LISTEN connection lost; polling until it is back", "table", s.t.name.String(), "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (s *Scheduler) listenOnce(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection is in LISTEN state: never return it to the pool.
	pc := conn.Hijack()
	defer func() { _ = pc.Close(context.WithoutCancel(ctx)) }()
	if _, err := pc.Exec(ctx, "LISTEN "+pgx.Identifier{s.t.channel}.Sanitize()); err != nil {
		return err
	}
	s.wake(time.Time{}) // something may have been scheduled while we were not listening
	for {
		n, err := pc.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var due time.Time
		if us, err := strconv.ParseInt(n.Payload, 10, 64); err == nil {
			due = time.UnixMicro(us)
		}
		s.wake(due)
	}
}

// signalSink tells a sink with a Signal method (the outbox: it wakes the
// relays in this process at once) that a hand-off has committed.
func (s *Scheduler) signalSink() {
	if sig, ok := s.sink.(interface{ Signal() }); ok {
		sig.Signal()
	}
}
