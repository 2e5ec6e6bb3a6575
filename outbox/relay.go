package outbox

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/hexeract/hexeract/internal/msgtrace"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
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
	noLocal bool // tests: ignore in-process signals, rely on notifications

	claimSQL, reinsertSQL, deadSQL, unarchiveSQL string
}

// NewRelay returns a relay that delivers the rows of the outbox table set
// by [WithTable] to pub. The relay opens its own connections with the
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

const returning = `d.seq, d.id, d.topic, d.ordering_key, d.metadata::text, d.payload, d.attempts, d.last_error, d.created_at`

func (r *Relay) buildSQL() {
	t := r.t
	// Heads: rows that can go now. A row with an ordering key is a head
	// only when no earlier row with the same key exists (it is the first
	// row of its key, found in the (ordering_key, seq) index: written as
	// NOT EXISTS, the planner scanned the whole table for keys with many
	// rows): the earlier row is either locked by another worker (in
	// flight), waiting for its retry time, or not yet visible. Heads are
	// locked one by one, in seq order and skipping those locked by others,
	// only as far as the outer LIMIT pulls them.
	//
	// Followers: for each keyed head this worker locked, the key's rows
	// from the head on, in seq order (no other worker can claim them while
	// the head is locked, so FOR UPDATE does not wait, unless producers
	// without the key lock committed a key's rows out of seq order). A hot key thus
	// moves in full batches, and a batch holds as few keys as fill it, so
	// the other workers find other keys' heads unlocked.
	//
	// The outer LIMIT stops the nested loop once the batch is full: heads
	// beyond it are neither read further nor locked.
	sel := `SELECT COALESCE(f.ctid, h.ctid) FROM (
  SELECT c.ctid, c.seq, c.ordering_key FROM ` + t.table + ` c
  WHERE c.next_attempt_at <= now()
    AND (c.ordering_key IS NULL OR c.seq = (
          SELECT p.seq FROM ` + t.table + ` p WHERE p.ordering_key = c.ordering_key ORDER BY p.ordering_key, p.seq LIMIT 1))
  ORDER BY c.seq LIMIT $1
  FOR UPDATE SKIP LOCKED
) h
LEFT JOIN LATERAL (
  SELECT k.ctid FROM ` + t.table + ` k
  WHERE h.ordering_key IS NOT NULL AND k.ordering_key = h.ordering_key AND k.seq >= h.seq
  ORDER BY k.seq LIMIT $1
  FOR UPDATE
) f ON true
LIMIT $1`
	claim := func(sel string) string {
		// The claimed rows are locked by this transaction, so their ctids
		// stay valid: the DELETE finds them with a TID scan.
		del := `DELETE FROM ` + t.table + ` d WHERE d.ctid = ANY(ARRAY(` + sel + `)) RETURNING `
		if r.cfg.retention == 0 {
			return del + returning
		}
		return `WITH d AS (` + del + `d.*), a AS (
INSERT INTO ` + t.delivered + ` (seq, id, topic, ordering_key, metadata, payload, attempts, created_at)
SELECT seq, id, topic, ordering_key, metadata, payload, attempts + 1, created_at FROM d)
SELECT ` + returning + ` FROM d`
	}
	r.claimSQL = claim(sel)
	// The backoff counts from this statement (after the publish failed),
	// not from now(), the start of a claiming transaction that stayed open
	// while the broker was called.
	r.reinsertSQL = `INSERT INTO ` + t.table + ` (seq, id, topic, ordering_key, metadata, payload, attempts, next_attempt_at, last_error, created_at)
SELECT u.s, u.i, u.t, NULLIF(u.k, ''), u.m::jsonb, u.p, u.a, statement_timestamp() + make_interval(secs => u.d), NULLIF(u.e, ''), u.c
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::int[], $8::float8[], $9::text[], $10::timestamptz[])
  AS u(s, i, t, k, m, p, a, d, e, c)`
	r.deadSQL = `INSERT INTO ` + t.dead + ` (seq, id, topic, ordering_key, metadata, payload, attempts, last_error, created_at)
SELECT u.s, u.i, u.t, NULLIF(u.k, ''), u.m::jsonb, u.p, u.a, NULLIF(u.e, ''), u.c
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::int[], $8::text[], $9::timestamptz[])
  AS u(s, i, t, k, m, p, a, e, c)`
	r.unarchiveSQL = `DELETE FROM ` + t.delivered + ` WHERE seq = ANY($1::bigint[])`
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

	if !r.noLocal {
		unregister := registerLocal(r.t.channel, r)
		defer unregister()
	}
	reg, err := r.m.register()
	if err != nil {
		return fmt.Errorf("outbox: relay metrics: %w", err)
	}
	defer func() { _ = reg.Unregister() }()
	r.m.lastProgress.Store(time.Now().UnixNano())

	var wg sync.WaitGroup
	if r.cfg.listen {
		wg.Go(func() { r.listen(ctx, listenCfg) })
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

// row is one claimed outbox row.
type row struct {
	seq       int64
	id        string
	topic     string
	key       *string
	metadata  string
	payload   []byte
	attempts  int32
	lastError *string
	createdAt time.Time
}

func scanRows(rows pgx.Rows, out []row) ([]row, error) {
	defer rows.Close()
	fast := binaryLayout(rows.FieldDescriptions())
	topic := ""
	for rows.Next() {
		var w row
		if fast {
			if err := w.decode(rows.RawValues(), topic); err != nil {
				return out, err
			}
			topic = w.topic
		} else if err := rows.Scan(&w.seq, &w.id, &w.topic, &w.key, &w.metadata, &w.payload, &w.attempts, &w.lastError, &w.createdAt); err != nil {
			return out, err
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// binaryLayout reports whether the claim's result columns arrive in the
// formats row.decode reads: binary int8, int4 and timestamptz; text and
// bytea either way (their binary form is the raw bytes).
func binaryLayout(fds []pgconn.FieldDescription) bool {
	want := []uint32{pgtype.Int8OID, pgtype.TextOID, pgtype.TextOID, pgtype.TextOID, pgtype.TextOID, pgtype.ByteaOID, pgtype.Int4OID, pgtype.TextOID, pgtype.TimestamptzOID}
	if len(fds) != len(want) {
		return false
	}
	for i, fd := range fds {
		if fd.DataTypeOID != want[i] {
			return false
		}
		switch fd.DataTypeOID {
		case pgtype.Int8OID, pgtype.Int4OID, pgtype.TimestamptzOID, pgtype.ByteaOID:
			if fd.Format != pgtype.BinaryFormatCode {
				return false
			}
		}
	}
	return true
}

// pgEpoch is PostgreSQL's timestamp epoch in Unix microseconds.
const pgEpoch = 946684800 * 1000000

var errRowLayout = errors.New("outbox: unexpected claim row layout")

// decode reads one claim row from its raw column values (see binaryLayout),
// without the per-column scan plans of rows.Scan.
// The topic string of the previous row is reused when equal (batches are
// usually one topic).
func (w *row) decode(v [][]byte, prevTopic string) error {
	if len(v[0]) != 8 || len(v[6]) != 4 || len(v[8]) != 8 || v[1] == nil || v[2] == nil || v[4] == nil {
		return errRowLayout
	}
	w.seq = int64(binary.BigEndian.Uint64(v[0]))
	w.id = string(v[1])
	if string(v[2]) == prevTopic {
		w.topic = prevTopic
	} else {
		w.topic = string(v[2])
	}
	if v[3] != nil {
		k := string(v[3])
		w.key = &k
	}
	w.metadata = string(v[4])
	w.payload = append(make([]byte, 0, len(v[5])), v[5]...)
	w.attempts = int32(binary.BigEndian.Uint32(v[6]))
	if v[7] != nil {
		e := string(v[7])
		w.lastError = &e
	}
	w.createdAt = time.UnixMicro(int64(binary.BigEndian.Uint64(v[8])) + pgEpoch)
	return nil
}

// outcome of a row in a batch.
const (
	delivered = iota
	failed    // publish failed: attempts+1, back off or die
	putBack   // not attempted (an earlier row with its key failed)
)

// inflight is a batch that was published and settled and waits for its
// COMMIT.
type inflight struct {
	start                    time.Time
	span                     trace.Span
	delivered, failed, deadN int
	deadErr                  string
}

// drain runs batches on one connection until a claim finds no row, or
// fewer rows than the batch size and none with an ordering key (the
// backlog is drained), or an error occurs. A full claim also wakes another
// worker. While drain goes on, the COMMIT of a batch travels in one round
// trip with the BEGIN and the claim of the next; its result is checked
// before the batch counts as delivered.
func (r *Relay) drain(ctx context.Context, db *pgxpool.Pool) error {
	conn, err := db.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	// A connection released inside a transaction is closed by the pool,
	// so every early return rolls the claim back.
	defer conn.Release()
	bg := context.WithoutCancel(ctx)
	var pending *inflight
	buf := make([]row, 0, r.cfg.batchSize) // reused by every batch of this call
	for {
		if pending != nil && ctx.Err() != nil {
			return r.commit(bg, conn, pending) // stopping: commit what the broker acknowledged
		}
		var b pgx.Batch
		sendCtx := ctx
		if pending != nil {
			b.Queue("COMMIT")
			sendCtx = bg // a cancellation must not cut the commit
		}
		b.Queue("BEGIN")
		b.Queue(r.claimSQL, r.cfg.batchSize)
		br := conn.SendBatch(sendCtx, &b)
		if pending != nil {
			tag, err := br.Exec()
			if err == nil && tag.String() != "COMMIT" {
				err = fmt.Errorf("transaction aborted (%s)", tag)
			}
			r.finish(pending, err)
			if err != nil {
				_ = br.Close()
				return err
			}
		}
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return fmt.Errorf("begin: %w", err)
		}
		rows, err := br.Query()
		if err != nil {
			_ = br.Close()
			return fmt.Errorf("claim: %w", err)
		}
		clear(buf)
		claimed, err := scanRows(rows, buf[:0])
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("claim: %w", err)
		}
		if len(claimed) == 0 {
			_, err := conn.Exec(bg, "ROLLBACK")
			return err
		}
		p, err := r.process(ctx, bg, conn, claimed)
		if err != nil {
			return err
		}
		switch {
		case len(claimed) == r.cfg.batchSize:
			r.wake() // more rows are likely waiting: bring in another worker
		case !keyed(claimed):
			// The claim took every claimable row: the backlog is drained.
			return r.commit(bg, conn, p)
		}
		// A full batch, or one with keyed rows: committing it makes the
		// next rows of its keys claimable, and no other worker could claim
		// them meanwhile. Claim again at once, in the COMMIT's round trip.
		pending = p
	}
}

// keyed reports whether a claimed batch holds a row with an ordering key.
func keyed(claimed []row) bool {
	for i := range claimed {
		if claimed[i].key != nil {
			return true
		}
	}
	return false
}

// commit commits the batch p alone.
func (r *Relay) commit(ctx context.Context, conn *pgxpool.Conn, p *inflight) error {
	tag, err := conn.Exec(ctx, "COMMIT")
	if err == nil && tag.String() != "COMMIT" {
		err = fmt.Errorf("transaction aborted (%s)", tag)
	}
	r.finish(p, err)
	return err
}

// finish records the outcome of a batch once its COMMIT returned.
func (r *Relay) finish(p *inflight, err error) {
	defer p.span.End()
	mctx := context.Background()
	if err != nil {
		p.span.RecordError(err)
		err = fmt.Errorf("commit after publishing %d messages (they will be published again): %w", p.delivered, err)
		r.log.Warn("outbox relay commit failed", "error", err)
		return
	}
	r.m.relayed.Add(mctx, int64(p.delivered), r.m.attrs)
	if p.failed > 0 {
		r.m.failed.Add(mctx, int64(p.failed), r.m.attrs)
	}
	if p.deadN > 0 {
		r.m.dead.Add(mctx, int64(p.deadN), r.m.attrs)
		r.log.Error("outbox rows moved to the dead table after max attempts", "count", p.deadN, "dead_table", r.t.name.String()+"_dead", "last_error", p.deadErr)
	}
	r.m.batch.Record(mctx, time.Since(p.start).Seconds(), r.m.attrs)
	r.m.lastProgress.Store(time.Now().UnixNano())
}

// process publishes a claimed batch in seq order and writes failed rows
// back, inside the claiming transaction (not committed).
func (r *Relay) process(ctx, bg context.Context, conn *pgxpool.Conn, claimed []row) (*inflight, error) {
	start := time.Now()
	slices.SortFunc(claimed, func(a, b row) int { return cmp.Compare(a.seq, b.seq) })

	mds, created := make([]message.Metadata, len(claimed)), make([]trace.SpanContext, len(claimed))
	ctx, span := r.startPublishSpan(ctx, claimed, mds, created)
	outcome := make([]uint8, len(claimed))
	errText := make([]string, len(claimed))
	r.publish(ctx, claimed, mds, created, outcome, errText)
	if ctx.Err() != nil {
		// Stopping: the messages carry ctx, and publishers that honour it
		// (AMQP, Redis, SQS) give up because of the cancellation, not the
		// broker. Put such rows back untouched instead of charging them an
		// attempt (or, on their last one, moving them to the dead table).
		for i := range outcome {
			if outcome[i] == failed {
				outcome[i] = putBack
			}
		}
	}

	p := &inflight{start: start, span: span}
	var back, dead []int
	for i := range claimed {
		switch outcome[i] {
		case delivered:
			p.delivered++
		case failed:
			p.failed++
			if int(claimed[i].attempts)+1 >= r.cfg.maxAttempts {
				dead = append(dead, i)
				p.deadN++
				p.deadErr = errText[i]
			} else {
				back = append(back, i)
			}
		case putBack:
			back = append(back, i)
		}
	}
	if len(back) > 0 || len(dead) > 0 {
		if err := r.settleFailures(bg, conn, claimed, outcome, errText, back, dead); err != nil {
			span.RecordError(err)
			span.End()
			return nil, fmt.Errorf("record failures: %w", err)
		}
	}
	return p, nil
}

// startPublishSpan decodes the metadata of the claimed rows into mds and
// their creation contexts (the traceparent the outbox's "create" span
// wrote) into created, and starts the batch's producer span: "publish
// <topic>" ("publish" when the batch spans several topics), messaging
// operation type "send" and name "publish", linked to every row's creation
// context as the messaging conventions say for batches. When every traced
// row of the batch belongs to one trace, the span is also a child of the
// first row's creation context, so a single flow stays one trace.
func (r *Relay) startPublishSpan(ctx context.Context, claimed []row, mds []message.Metadata, created []trace.SpanContext) (context.Context, trace.Span) {
	var parent trace.SpanContext
	oneTrace, oneTopic := true, true
	links := make([]trace.Link, 0, len(claimed))
	for i := range claimed {
		mds[i] = decodeMetadata(claimed[i].metadata)
		if claimed[i].topic != claimed[0].topic {
			oneTopic = false
		}
		sc := trace.SpanContextFromContext(msgtrace.Extract(context.Background(), mds[i], msgtrace.TraceContext))
		if !sc.IsValid() {
			continue
		}
		created[i] = sc
		links = append(links, trace.Link{SpanContext: sc})
		if !parent.IsValid() {
			parent = sc
		} else if parent.TraceID() != sc.TraceID() {
			oneTrace = false
		}
	}
	name := "publish"
	attrs := []attribute.KeyValue{
		semconv.MessagingSystemKey.String(msgtrace.System),
		semconv.MessagingOperationTypeSend,
		semconv.MessagingOperationName("publish"),
		semconv.MessagingBatchMessageCount(len(claimed)),
		r.m.tableAttr,
	}
	if oneTopic {
		name += " " + claimed[0].topic
		attrs = append(attrs, semconv.MessagingDestinationName(claimed[0].topic))
	}
	if oneTrace && parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	}
	return r.m.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attrs...), trace.WithLinks(links...))
}

// publish publishes claimed rows in order, one Publish call per run of
// rows with the same topic, and records each row's outcome. Each message's
// context carries its creation context, so a tracing publisher's send span
// continues the producer's trace.
func (r *Relay) publish(ctx context.Context, claimed []row, mds []message.Metadata, created []trace.SpanContext, outcome []uint8, errText []string) {
	span := trace.SpanFromContext(ctx)
	var blocked map[string]bool // keys with a failed row in this batch
	msgs := make([]*message.Message, 0, len(claimed))
	idx := make([]int, 0, len(claimed))
	fail := func(i int, err error) {
		outcome[i] = failed
		errText[i] = err.Error()
		if k := claimed[i].key; k != nil {
			if blocked == nil {
				blocked = map[string]bool{}
			}
			blocked[*k] = true
		}
	}
	flush := func(topic string) {
		if len(msgs) == 0 {
			return
		}
		if err := r.safePublish(topic, msgs); err != nil {
			span.RecordError(err)
			if len(msgs) == 1 {
				fail(idx[0], err)
			} else {
				r.publishOneByOne(topic, msgs, idx, claimed, outcome, fail, func(k string) bool { return blocked[k] })
			}
		}
		msgs, idx = msgs[:0], idx[:0]
	}
	topic := ""
	for i := range claimed {
		w := &claimed[i]
		if w.key != nil && blocked[*w.key] {
			outcome[i] = putBack
			continue
		}
		if w.topic != topic {
			flush(topic)
			topic = w.topic
			if w.key != nil && blocked[*w.key] { // the flush may have failed this key
				outcome[i] = putBack
				continue
			}
		}
		msg := message.NewMessage(w.id, w.payload)
		msg.Metadata = mds[i]
		mctx := ctx
		if created[i].IsValid() {
			mctx = trace.ContextWithRemoteSpanContext(ctx, created[i])
		}
		msg.SetContext(mctx)
		msgs = append(msgs, msg)
		idx = append(idx, i)
	}
	flush(topic)
}

// publishOneByOne publishes msgs one at a time after a publish of the whole
// run failed, so that one poison message (too large for the broker, say)
// is charged alone and its batch-mates go out. Messages behind a failed
// one with the same ordering key are put back untried. Two failures in a
// row look like a broker outage rather than a poison message: the rest of
// the run is then failed with that error without trying each message.
func (r *Relay) publishOneByOne(topic string, msgs []*message.Message, idx []int, claimed []row, outcome []uint8, fail func(int, error), blocked func(string) bool) {
	streak := 0
	for j := range msgs {
		i := idx[j]
		if k := claimed[i].key; k != nil && blocked(*k) {
			outcome[i] = putBack
			continue
		}
		err := r.safePublish(topic, msgs[j:j+1])
		if err == nil {
			streak = 0
			continue
		}
		fail(i, err)
		if streak++; streak < 2 {
			continue
		}
		for _, rest := range idx[j+1:] {
			if k := claimed[rest].key; k != nil && blocked(*k) {
				outcome[rest] = putBack
			} else {
				fail(rest, err)
			}
		}
		return
	}
}

// safePublish calls the publisher, turning a panic into an error so a
// faulty publisher fails the batch instead of the process.
func (r *Relay) safePublish(topic string, msgs []*message.Message) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("publisher panicked: %v", p)
		}
	}()
	return r.pub.Publish(topic, msgs...)
}

// settleFailures writes failed and put-back rows back into the outbox (with
// their original seq, so order is kept) and dead rows into the dead table,
// in the claiming transaction.
func (r *Relay) settleFailures(ctx context.Context, tx *pgxpool.Conn, claimed []row, outcome []uint8, errText []string, back, dead []int) error {
	if r.cfg.retention > 0 {
		seqs := make([]int64, 0, len(back)+len(dead))
		for _, i := range append(append([]int(nil), back...), dead...) {
			seqs = append(seqs, claimed[i].seq)
		}
		if _, err := tx.Exec(ctx, r.unarchiveSQL, seqs); err != nil {
			return err
		}
	}
	if len(back) > 0 {
		n := len(back)
		s, ids, topics, keys, mds := make([]int64, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		ps, as, ds, es, cs := make([][]byte, n), make([]int32, n), make([]float64, n), make([]string, n), make([]time.Time, n)
		for j, i := range back {
			w := &claimed[i]
			s[j], ids[j], topics[j], mds[j], ps[j], as[j], cs[j] = w.seq, w.id, w.topic, w.metadata, w.payload, w.attempts, w.createdAt
			if w.key != nil {
				keys[j] = *w.key
			}
			if w.lastError != nil {
				es[j] = *w.lastError
			}
			if outcome[i] == failed {
				as[j] = w.attempts + 1
				ds[j] = r.backoff(int(as[j])).Seconds()
				es[j] = errText[i]
			}
		}
		if _, err := tx.Exec(ctx, r.reinsertSQL, s, ids, topics, keys, mds, ps, as, ds, es, cs); err != nil {
			return err
		}
	}
	if len(dead) > 0 {
		n := len(dead)
		s, ids, topics, keys, mds := make([]int64, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		ps, as, es, cs := make([][]byte, n), make([]int32, n), make([]string, n), make([]time.Time, n)
		for j, i := range dead {
			w := &claimed[i]
			s[j], ids[j], topics[j], mds[j], ps[j], as[j], es[j], cs[j] = w.seq, w.id, w.topic, w.metadata, w.payload, w.attempts+1, errText[i], w.createdAt
			if w.key != nil {
				keys[j] = *w.key
			}
		}
		if _, err := tx.Exec(ctx, r.deadSQL, s, ids, topics, keys, mds, ps, as, es, cs); err != nil {
			return err
		}
	}
	return nil
}

// backoff returns the wait before attempt number attempts+1: backoffMin
// doubled per earlier failure, capped at backoffMax, minus up to 20% jitter.
func (r *Relay) backoff(attempts int) time.Duration {
	d := r.cfg.backoffMin
	for i := 1; i < attempts && d < r.cfg.backoffMax; i++ {
		d *= 2
	}
	d = min(d, r.cfg.backoffMax)
	return d - time.Duration(rand.Float64()*0.2*float64(d))
}

// listen keeps a dedicated connection LISTENing on the outbox channel and
// wakes a worker on every notification. It reconnects after errors; the
// workers' polling covers the gap.
func (r *Relay) listen(ctx context.Context, cfg *pgx.ConnConfig) {
	for ctx.Err() == nil {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			_, err = conn.Exec(ctx, `LISTEN "`+r.t.channel+`"`)
			if err == nil {
				r.wake() // rows may have arrived while not listening
				for {
					if _, err = conn.WaitForNotification(ctx); err != nil {
						break
					}
					r.wake()
				}
			}
			_ = conn.Close(context.WithoutCancel(ctx))
		}
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("outbox relay lost its notification connection; polling until it is back", "error", err)
		if !sleep(ctx, time.Second) {
			return
		}
	}
}

func (r *Relay) statsLoop(ctx context.Context, db *pgxpool.Pool) {
	for {
		st, err := queryStats(ctx, db, r.t)
		if err == nil {
			r.m.setStats(st)
		} else if ctx.Err() == nil {
			r.m.statsOK.Store(false)
			r.log.Warn("outbox relay cannot read table statistics", "error", err)
		}
		if !sleep(ctx, r.cfg.statsEvery) {
			return
		}
	}
}

func (r *Relay) retentionLoop(ctx context.Context, db *pgxpool.Pool) {
	every := min(max(r.cfg.retention/10, time.Second), time.Minute)
	for {
		if _, err := cleanupDelivered(ctx, db, r.t, r.cfg.retention); err != nil && ctx.Err() == nil {
			r.log.Warn("outbox retention cleanup failed", "error", err)
		}
		if !sleep(ctx, every) {
			return
		}
	}
}
