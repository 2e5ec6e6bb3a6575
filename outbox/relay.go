// Relay: the type, its construction (option checks) and the Run loop that
// starts the workers and the background loops. The jobs of a relay live in
// the other relay_*.go files: relay_claim.go (claim SQL, row decoding),
// relay_drain.go (the batch loop, outcome accounting),
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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/store"
)

// Relay delivers outbox rows to a Watermill publisher. It runs until its
// context is cancelled; several relays (goroutines or processes) can run
// on the same table at once. It satisfies hexeract.Worker, so
// hexeract.WithWorker(relay) runs it beside an App's router.
//
// The claim is the store driver's. On PostgreSQL each worker of a relay
// claims a batch in a transaction with one
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
// the database server's clock. On MySQL/MariaDB (FOR UPDATE SKIP LOCKED)
// and SQLite (UPDATE ... RETURNING) a worker claims rows with a lease in a
// short transaction, publishes them, and deletes them in another; the rows
// of a relay that died are claimed again once the lease ([WithLease])
// expired. Delivery is at-least-once: a batch published but not settled is
// published again.
type Relay struct {
	st  store.Store
	pub message.Publisher
	cfg relayConfig
	t   tables
	log *slog.Logger
	m   *relayMetrics

	wakeCh  chan struct{}
	running atomic.Bool
	noLocal bool                         // tests: ignore in-process signals, rely on notifications
	attach  func(*Relay) (detach func()) // set by Outbox.NewRelay: its Signal wakes this relay
}

// NewRelay returns a relay that delivers the rows of the outbox table set
// by [WithTable] in st to pub. It is woken by the store's notifications
// (PostgreSQL NOTIFY across processes; in-process on MySQL and SQLite) and
// by polling; [Outbox.NewRelay] builds one that its Outbox's Signal also
// wakes in-process. On PostgreSQL the relay opens its own connections with
// the configuration of the store's pool (one per worker), and one of the
// pool's connections listens for notifications.
// It returns an error for a bad table name or option before any SQL runs.
func NewRelay(st store.Store, pub message.Publisher, opts ...RelayOption) (*Relay, error) {
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
	if st == nil {
		return nil, errors.New("outbox: NewRelay needs a store (postgres.New(pool), sqlite.Open, mysql.Open or storeurl.Open)")
	}
	t, err := resolveTablesFor(st.Dialect(), cfg.table)
	if err != nil {
		return nil, err
	}
	switch {
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
		st: st, pub: pub, cfg: cfg, t: t,
		log:    cfg.logger.With("outbox", t.name.String()),
		wakeCh: make(chan struct{}, 1),
	}
	r.m, err = newRelayMetrics(cfg, t)
	if err != nil {
		return nil, err
	}
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

	db, err := r.st.Executor().OutboxOpenRelay(ctx, store.OutboxRelayConfig{
		Table: r.t.st, Workers: r.cfg.workers, Lease: r.cfg.lease, SyncCommit: r.cfg.syncCommit, Retention: r.cfg.retention > 0,
	})
	if err != nil {
		return fmt.Errorf("outbox: relay pool: %w", err)
	}
	defer db.Close()

	if r.attach != nil && !r.noLocal {
		defer r.attach(r)()
	}
	reg, err := r.m.register()
	if err != nil {
		return fmt.Errorf("outbox: relay metrics: %w", err)
	}
	defer func() { _ = reg.Unregister() }()
	r.m.lastProgress.Store(time.Now().UnixNano())

	var wg sync.WaitGroup
	if r.cfg.listen {
		wg.Go(func() { r.listen(ctx) })
	}
	wg.Go(func() { r.statsLoop(ctx) })
	if r.cfg.retention > 0 {
		wg.Go(func() { r.retentionLoop(ctx) })
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
func (r *Relay) work(ctx context.Context, db store.OutboxRelayPool) {
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
		if err != nil && missingTable(err) {
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

// missingTable reports whether err says the outbox table does not exist
// (PostgreSQL SQLSTATE 42P01, MySQL error 1146, SQLite "no such table").
func missingTable(err error) bool {
	var coded interface{ SQLState() string }
	if errors.As(err, &coded) && coded.SQLState() == "42P01" {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "Error 1146") || strings.Contains(msg, "no such table")
}
