package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
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
	if hasJobs {
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

// wake asks the poller to look at the table now.
func (s *Scheduler) wake() {
	select {
	case s.wakeCh <- struct{}{}:
	default:
	}
}

// poll is the claim loop: drain everything due with the configured number of
// concurrent claimers, then sleep until the next due time.
func (s *Scheduler) poll(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := s.drain(ctx)
		var sleep time.Duration
		if err == nil {
			sleep, err = s.nextDue(ctx)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.cfg.logger.Error("scheduler: poll failed; retrying", "table", s.t.name.String(), "error", err, "retry_in", backoff)
			sleep = backoff
			backoff = min(backoff*2, s.cfg.pollInterval)
		} else {
			backoff = 50 * time.Millisecond
		}
		if sleep <= 0 {
			continue
		}
		timer := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-s.wakeCh:
			timer.Stop()
		case <-timer.C:
		}
	}
}

// drain claims batches with up to cfg.workers concurrent transactions until
// a claim comes back short.
func (s *Scheduler) drain(ctx context.Context) error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range s.cfg.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				n, err := s.claim(ctx)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				if n < s.cfg.batchSize {
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// nextDue returns how long to sleep: until the earliest due message that no
// other poller is handing off, at most the poll interval.
func (s *Scheduler) nextDue(ctx context.Context) (time.Duration, error) {
	var secs float64
	err := s.pool.QueryRow(ctx, s.sql.peek).Scan(&secs)
	if errors.Is(err, pgx.ErrNoRows) {
		return s.cfg.pollInterval, nil
	}
	if err != nil {
		return 0, err
	}
	d := time.Duration(secs * float64(time.Second))
	if d <= 0 {
		// Due but not claimed: another transaction held it for a moment.
		return time.Millisecond, nil
	}
	return min(d, s.cfg.pollInterval), nil
}

type claimed struct {
	id, topic string
	due       time.Time
	msg       *message.Message
}

// claim hands one batch of due messages to the sink in the transaction that
// deletes them. It returns the number handed off.
func (s *Scheduler) claim(ctx context.Context) (int, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	rows, err := tx.Query(ctx, s.sql.claim, s.cfg.batchSize)
	if err != nil {
		return 0, fmt.Errorf("claim from %s: %w", s.t.name, err)
	}
	var batch []claimed
	for rows.Next() {
		var (
			c        claimed
			uuid     string
			payload  []byte
			metadata []byte
		)
		if err := rows.Scan(&c.id, &c.topic, &c.due, &uuid, &payload, &metadata); err != nil {
			rows.Close()
			return 0, err
		}
		md := message.Metadata{}
		if err := json.Unmarshal(metadata, &md); err != nil {
			// Cannot happen for rows written by Schedule; keep the message
			// deliverable and say what went wrong.
			md = message.Metadata{"hexeract_metadata_error": err.Error()}
		}
		md[KeyDueAt] = c.due.UTC().Format(time.RFC3339Nano)
		c.msg = message.NewMessage(uuid, payload)
		c.msg.Metadata = md
		batch = append(batch, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("claim from %s: %w", s.t.name, err)
	}
	if len(batch) == 0 {
		return 0, nil
	}
	// Hand off in due order, one sink call per run of the same topic.
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
		c.msg.SetContext(ctx)
		byTopic[c.topic] = append(byTopic[c.topic], c.msg)
	}
	for _, topic := range order {
		if err := s.sink.PublishMessages(ctx, tx, topic, byTopic[topic]...); err != nil {
			return 0, fmt.Errorf("hand off %d due messages for topic %q: %w", len(byTopic[topic]), topic, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit hand-off: %w", err)
	}
	return len(batch), nil
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
	s.wake() // something may have been scheduled while we were not listening
	for {
		if _, err := pc.WaitForNotification(ctx); err != nil {
			return err
		}
		s.wake()
	}
}
