package storetest

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/scheduler"
	"github.com/hexeract/hexeract/store"
)

// benchBatch is the number of messages per Schedule call and per raw
// INSERT, and the claim size of both the scheduler and the raw loop.
const benchBatch = 500

// BenchScheduler measures, on the driver of h, the scheduler beside that
// database's raw SQL doing the same job, each on n = 10,000 messages per
// iteration (metric msgs/s):
//
//   - schedule/hexeract: Scheduler.ScheduleWith, 500 messages a call, each
//     call its own transaction; schedule/raw: a multi-row INSERT of 500 rows
//     of the same shape, each its own transaction;
//   - handoff/hexeract: Scheduler.Run with a sink that takes the messages
//     (in the hand-off transaction) and does nothing, from the start of Run
//     until all 10,000 due messages were handed off; handoff/raw: a loop of
//     transactions, each deleting the 500 earliest due rows: on PostgreSQL
//     DELETE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING
//     the columns, on SQLite DELETE ... WHERE id IN (SELECT ... LIMIT)
//     RETURNING the columns (the rows go to the client, which drops them),
//     on MySQL DELETE ... ORDER BY due_at LIMIT (no row comes back: MySQL
//     has no DELETE ... RETURNING and no LIMIT in an IN subquery).
func BenchScheduler[TTx any](b *testing.B, h Harness[TTx]) {
	const n = 10000
	b.Run("schedule/hexeract", func(b *testing.B) {
		d := h.OpenFresh(b)
		s := benchSched(b, d, scheduler.SinkFunc(func(context.Context, store.Executor, string, ...*message.Message) error { return nil }))
		b.ResetTimer()
		for b.Loop() {
			for from := 0; from < n; from += benchBatch {
				if _, err := s.ScheduleWith(context.Background(), d.Executor(), time.Now().Add(time.Hour), reminders(from, benchBatch)...); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("schedule/raw", func(b *testing.B) {
		d := h.OpenFresh(b)
		raw := newRawTable(b, h, d)
		b.ResetTimer()
		for b.Loop() {
			raw.insert(b, n, time.Now().Add(time.Hour))
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("handoff/hexeract", func(b *testing.B) {
		d := h.OpenFresh(b)
		var handed atomic.Int64
		s := benchSched(b, d, countSink(&handed))
		var total time.Duration
		for i := 0; i < b.N; i++ {
			for from := 0; from < n; from += benchBatch {
				if _, err := s.ScheduleWith(context.Background(), d.Executor(), time.Now().Add(-time.Second), reminders(from, benchBatch)...); err != nil {
					b.Fatal(err)
				}
			}
			handed.Store(0)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			start := time.Now()
			go func() { done <- s.Run(ctx) }()
			deadline := time.Now().Add(2 * time.Minute)
			for handed.Load() < n {
				if time.Now().After(deadline) {
					b.Fatalf("%d of %d handed off after 2 min", handed.Load(), n)
				}
				time.Sleep(time.Millisecond)
			}
			total += time.Since(start)
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			// A new Scheduler per iteration: Run may be called once.
			s = benchSched(b, d, countSink(&handed))
		}
		b.ReportMetric(float64(n*b.N)/total.Seconds(), "msgs/s")
	})
	b.Run("handoff/raw", func(b *testing.B) {
		d := h.OpenFresh(b)
		raw := newRawTable(b, h, d)
		var total time.Duration
		for i := 0; i < b.N; i++ {
			raw.insert(b, n, time.Now().Add(-time.Second))
			start := time.Now()
			for range n / benchBatch {
				if err := d.InTx(context.Background(), func(ctx context.Context, tx TTx) error { return h.Exec(ctx, tx, raw.claim) }); err != nil {
					b.Fatal(err)
				}
			}
			total += time.Since(start)
			var left int64
			if err := d.InTx(context.Background(), func(ctx context.Context, tx TTx) (err error) {
				left, err = h.QueryInt(ctx, tx, `SELECT COUNT(*) FROM storetest_raw`)
				return err
			}); err != nil || left != 0 {
				b.Fatalf("%d rows left after the raw claim loop (%v)", left, err)
			}
		}
		b.ReportMetric(float64(n*b.N)/total.Seconds(), "msgs/s")
	})
}

// countSink counts the messages handed to it and does nothing else.
func countSink(handed *atomic.Int64) scheduler.Sink {
	return scheduler.SinkFunc(func(_ context.Context, _ store.Executor, _ string, msgs ...*message.Message) error {
		handed.Add(int64(len(msgs)))
		return nil
	})
}

func benchSched[TTx any](b *testing.B, d store.Driver[TTx], sink scheduler.Sink) *scheduler.Scheduler[TTx] {
	b.Helper()
	s, err := scheduler.New(d, sink, scheduler.WithLogger(quiet()), scheduler.WithBatchSize(benchBatch), scheduler.WithoutNotify())
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	return s
}

// rawTable is the raw-SQL counterpart of the scheduler table: the same
// columns and index, in the dialect's types.
type rawTable[TTx any] struct {
	h     Harness[TTx]
	d     store.Driver[TTx]
	claim string
	seq   int
}

func newRawTable[TTx any](b *testing.B, h Harness[TTx], d store.Driver[TTx]) *rawTable[TTx] {
	r := &rawTable[TTx]{h: h, d: d}
	var ddl []string
	switch d.Dialect() {
	case store.Postgres:
		ddl = []string{`CREATE TABLE storetest_raw (id text PRIMARY KEY, topic text NOT NULL, due_at timestamptz NOT NULL, uuid text NOT NULL, payload bytea NOT NULL, metadata jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`,
			`CREATE INDEX storetest_raw_due ON storetest_raw (due_at)`}
		r.claim = fmt.Sprintf(`DELETE FROM storetest_raw WHERE id IN (SELECT id FROM storetest_raw WHERE due_at <= clock_timestamp() ORDER BY due_at LIMIT %d FOR UPDATE SKIP LOCKED) RETURNING id, topic, due_at, uuid, payload, metadata`, benchBatch)
	case store.MySQL:
		ddl = []string{"CREATE TABLE storetest_raw (id VARCHAR(255) NOT NULL PRIMARY KEY, topic VARCHAR(255) NOT NULL, due_at DATETIME(6) NOT NULL, uuid VARCHAR(255) NOT NULL, payload LONGBLOB NOT NULL, metadata LONGTEXT NOT NULL, created_at DATETIME(6) NOT NULL, KEY storetest_raw_due (due_at)) ENGINE=InnoDB"}
		r.claim = fmt.Sprintf(`DELETE FROM storetest_raw WHERE due_at <= UTC_TIMESTAMP(6) ORDER BY due_at LIMIT %d`, benchBatch)
	default:
		ddl = []string{`CREATE TABLE storetest_raw (id TEXT NOT NULL PRIMARY KEY, topic TEXT NOT NULL, due_at INTEGER NOT NULL, uuid TEXT NOT NULL, payload BLOB NOT NULL, metadata TEXT NOT NULL, created_at INTEGER NOT NULL)`,
			`CREATE INDEX storetest_raw_due ON storetest_raw (due_at)`}
		r.claim = fmt.Sprintf(`DELETE FROM storetest_raw WHERE id IN (SELECT id FROM storetest_raw WHERE due_at <= CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER) ORDER BY due_at LIMIT %d) RETURNING id, topic, due_at, uuid, payload, metadata`, benchBatch)
	}
	for _, q := range ddl {
		if err := d.InTx(context.Background(), func(ctx context.Context, tx TTx) error { return h.Exec(ctx, tx, q) }); err != nil {
			b.Fatal(err)
		}
	}
	return r
}

// insert writes n rows due at due, benchBatch rows per transaction.
func (r *rawTable[TTx]) insert(b *testing.B, n int, due time.Time) {
	dialect := r.d.Dialect()
	payload := []byte(`{"n":12345}`)
	meta := `{"ce_type":"storetest.reminder","ce_id":"x","ce_source":"hexeract","ce_specversion":"1.0","content-type":"application/json"}`
	for from := 0; from < n; from += benchBatch {
		var sb strings.Builder
		sb.WriteString(`INSERT INTO storetest_raw (id, topic, due_at, uuid, payload, metadata, created_at) VALUES `)
		args := make([]any, 0, benchBatch*7)
		for i := range benchBatch {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString("(")
			for j := range 7 {
				if j > 0 {
					sb.WriteString(", ")
				}
				sb.WriteString(placeholder(dialect, len(args)+j+1))
			}
			sb.WriteString(")")
			r.seq++
			id := fmt.Sprintf("raw-%012d", r.seq)
			var at, now any = due, time.Now()
			switch dialect {
			case store.SQLite:
				at, now = due.UnixMicro(), time.Now().UnixMicro()
			case store.MySQL:
				at, now = due.UTC(), time.Now().UTC()
			}
			args = append(args, id, "storetest.reminder", at, id, payload, meta, now)
		}
		if err := r.d.InTx(context.Background(), func(ctx context.Context, tx TTx) error { return r.h.Exec(ctx, tx, sb.String(), args...) }); err != nil {
			b.Fatal(err)
		}
	}
}
