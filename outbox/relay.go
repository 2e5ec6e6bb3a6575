// Relay: the type, its construction (option checks) and the Run loop that
// starts the workers and the background loops. The jobs of a relay live in
// the other relay_*.go files: relay_claim.go (claim SQL, row decoding),
// relay_drain.go (the batch loop, pipelined commits, outcome accounting),
// relay_publish.go (publishing a batch, one-by-one fallback, trace span),
// relay_settle.go (writing failed rows back with backoff, or dead),
// relay_notify.go (LISTEN for wake-ups, through internal/pgnotify),
// relay_stats.go (table statistics) and relay_retention.go (trimming
// delivered rows).

package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Relay delivers outbox rows to a Watermill publisher. It runs until its
// context is cancelled; several relays (goroutines or processes) can run
// on the same table at once. It satisfies hexeract.Worker, so
// hexeract.WithWorker(relay) runs it beside an App's router.
//
// Each worker of a relay claims a batch in a transaction with one
//
//	DELETE ... WHERE ctid = ANY(ARRAY(SELECT ... heads ORDER BY seq FOR UPDATE SKIP LOCKED
//	    LEFT JOIN LATERAL (the head's key's rows from the head on, FOR UPDATE) ... LIMIT n)) RETURNING ...
//
// (heads are rows without an ordering key and the first row of each key),
// publishes the rows, and commits only after the publisher returned
// without error. A worker whose batch was full, or held keyed rows,
// claims again at once; a full batch also wakes another worker. The
// transaction stays open while the broker is called: the claimed rows
// are locked, so no other worker or relay can claim them, and if the
// relay dies (crash, lost connection) PostgreSQL rolls the transaction
// back and the rows are claimable again at once. A relay that
// hangs is cut off by PostgreSQL after the lease ([WithLease]), measured on
// the database server's clock. Delivery is at-least-once: a batch published
// but not committed is published again.
type Relay struct {
	src *pgxpool.Pool
	pub message.Publisher
	cfg relayConfig
	t   tables
	log *slog.Logger
	m   *relayMetrics

	wakeCh  chan struct{}
	running atomic.Bool
	noLocal bool    // tests: ignore in-process signals, rely on notifications
	ob      *Outbox // set by Outbox.NewRelay: its Signal wakes this relay

	claimSQL, reinsertSQL, deadSQL, unarchiveSQL string
}

// NewRelay returns a relay that delivers the rows of the outbox table set
// by [WithTable] to pub. It is woken by PostgreSQL notifications and by
// polling; [Outbox.NewRelay] builds one that its Outbox's Signal also
// wakes in-process. The relay opens its own connections with the
// configuration of pool (one per worker, one for statistics and one that
// listens for notifications), so it does not take connections from pool.
// It returns an error for a bad table name or option before any SQL runs.
func NewRelay(pool *pgxpool.Pool, pub message.Publisher, opts ...RelayOption) (*Relay, error) {
	cfg := relayConfig{
		table: DefaultTable, batchSize: 256, workers: 4, pollInterval: time.Second,
		maxAttempts: 10, backoffMin: time.Second, backoffMax: 5 * time.Minute,
		lease: 30 * time.Second, listen: true, statsEvery: 5 * time.Second,
	}
	for _, opt := range opts {
		if opt != nil {
			opt.applyRelay(&cfg)
		}
	}
	t, err := resolveTables(cfg.table)
	if err != nil {
		return nil, err
	}
	switch {
	case pool == nil:
		return nil, errors.New("outbox: NewRelay needs a *pgxpool.Pool")
	case pub == nil:
		return nil, errors.New("outbox: NewRelay needs a Watermill publisher to deliver to")
	case cfg.batchSize < 1 || cfg.batchSize > 10000:
		return nil, fmt.Errorf("outbox: batch size %d out of range; use WithBatchSize(1..10000)", cfg.batchSize)
	case cfg.workers < 1 || cfg.workers > 256:
		return nil, fmt.Errorf("outbox: %d workers out of range; use WithWorkers(1..256)", cfg.workers)
	case cfg.pollInterval <= 0:
		return nil, fmt.Errorf("outbox: poll interval %v must be positive", cfg.pollInterval)
	case cfg.maxAttempts < 1:
		return nil, fmt.Errorf("outbox: max attempts %d must be at least 1", cfg.maxAttempts)
	case cfg.backoffMin <= 0 || cfg.backoffMax < cfg.backoffMin:
		return nil, fmt.Errorf("outbox: backoff min %v / max %v: need 0 < min <= max", cfg.backoffMin, cfg.backoffMax)
	case cfg.lease < time.Second:
		return nil, fmt.Errorf("outbox: lease %v is too short; use WithLease of at least 1s", cfg.lease)
	case cfg.retention < 0:
		return nil, fmt.Errorf("outbox: negative retention %v", cfg.retention)
	case cfg.statsEvery <= 0:
		return nil, fmt.Errorf("outbox: stats interval %v must be positive", cfg.statsEvery)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	r := &Relay{
		src: pool, pub: pub, cfg: cfg, t: t,
		log:    cfg.logger.With("outbox", t.name.String()),
		wakeCh: make(chan struct{}, 1),
	}
	r.m, err = newRelayMetrics(cfg, t)
	if err != nil {
		return nil, err
	}
	r.buildSQL()
	return r, nil
}

// wake makes one idle worker look for rows now.
func (r *Relay) wake() {
	select {
	case r.wakeCh <- struct{}{}:
	default:
	}
}

// Run delivers rows until ctx is cancelled, then returns nil. Database and
// publisher errors are logged, counted and retried; they do not stop Run.
// A batch whose publish completed when ctx is cancelled is still committed;
// rows whose publish failed while ctx was cancelled are put back without
// counting an attempt.
// Run returns an error only when called while already running.
func (r *Relay) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("outbox: Relay.Run called while the relay is already running")
	}
	defer r.running.Store(false)

	pcfg := r.src.Config()
	pcfg.MaxConns = int32(r.cfg.workers + 2) // workers, statistics, retention
	pcfg.MinConns = 0
	listenCfg := pcfg.ConnConfig.Copy()
	if pcfg.ConnConfig.RuntimeParams == nil {
		pcfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	rp := pcfg.ConnConfig.RuntimeParams
	rp["idle_in_transaction_session_timeout"] = strconv.FormatInt(r.cfg.lease.Milliseconds(), 10)
	rp["application_name"] = "hexeract-relay " + r.t.name.String()
	if !r.cfg.syncCommit {
		rp["synchronous_commit"] = "off"
	}
	db, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("outbox: relay pool: %w", err)
	}
	defer db.Close()

	if r.ob != nil && !r.noLocal {
		defer r.ob.addRelay(r)()
	}
	reg, err := r.m.register()
	if err != nil {
		return fmt.Errorf("outbox: relay metrics: %w", err)
	}
	defer func() { _ = reg.Unregister() }()
	r.m.lastProgress.Store(time.Now().UnixNano())

	var wg sync.WaitGroup
	if r.cfg.listen {
		l, err := r.listener(listenCfg)
		if err != nil {
			return fmt.Errorf("outbox: relay listener: %w", err)
		}
		wg.Go(func() { l.Run(ctx) })
	}
	wg.Go(func() { r.statsLoop(ctx, db) })
	if r.cfg.retention > 0 {
		wg.Go(func() { r.retentionLoop(ctx, db) })
	}
	for range r.cfg.workers {
		wg.Go(func() { r.work(ctx, db) })
	}
	wg.Wait()
	return nil
}

// work is one worker: it drains the outbox, then waits for a wake-up (a
// local signal, a notification, a full batch of another worker) or the poll
// interval. Failed rounds are retried after a short growing pause.
func (r *Relay) work(ctx context.Context, db *pgxpool.Pool) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		default:
		}
		err := r.drain(ctx, db)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
			err = fmt.Errorf("%w; create the outbox tables with outbox.Migrate or \"hexeract migrate up --outbox-table %s\"", err, r.t.name)
		}
		if err != nil && ctx.Err() == nil {
			failures++
			r.m.errors.Add(context.Background(), 1, r.m.attrs)
			r.log.Warn("outbox relay batch failed", "error", err, "consecutive_failures", failures)
			wait := min(r.cfg.pollInterval, time.Duration(failures)*100*time.Millisecond)
			if !sleep(ctx, wait) {
				return
			}
			continue
		}
		failures = 0
		timer.Reset(r.cfg.pollInterval)
		select {
		case <-ctx.Done():
			return
		case <-r.wakeCh:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// sleep waits d and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
