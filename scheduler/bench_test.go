package scheduler_test

import (
	"context"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hexeract/hexeract/store"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/adapters/gochannel"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/scheduler"
)

// countingSink counts messages handed to the wrapped sink.
type countingSink struct {
	scheduler.Sink
	n atomic.Int64
}

func (c *countingSink) PublishMessagesWith(ctx context.Context, tx store.Executor, topic string, msgs ...*message.Message) error {
	if err := c.Sink.PublishMessagesWith(ctx, tx, topic, msgs...); err != nil {
		return err
	}
	c.n.Add(int64(len(msgs)))
	return nil
}

// BenchmarkDueThroughput measures how fast due messages leave the scheduler:
// 10,000 messages due at the same moment, one scheduler instance, timed from
// the start of Run until every message is committed into the sink. "table"
// is a minimal sink (COPY into a table in the hand-off transaction);
// "outbox" is the real transactional outbox (its relay not running, so only
// the hand-off is measured).
func BenchmarkDueThroughput(b *testing.B) {
	const n = 10000
	pool := testenv.Postgres(b)
	ctx := context.Background()
	msgs := make([]router.Message, n)
	for i := range msgs {
		msgs[i] = reminder{N: i}
	}
	type sinkCase struct {
		name string
		make func(b *testing.B) scheduler.Sink
	}
	sinks := []sinkCase{
		{"table", func(b *testing.B) scheduler.Sink { return newTableSink(b, pool) }},
		{"outbox", func(b *testing.B) scheduler.Sink { return newOutbox(b, pool, nil) }},
	}
	for _, sc := range sinks {
		for _, workers := range []int{1, 2, 4} {
			b.Run(sc.name+"/workers="+itoa(workers), func(b *testing.B) {
				sink := &countingSink{Sink: sc.make(b)}
				table := "sched_" + testenv.Suffix()
				b.Cleanup(func() { dropTables(pool, table) })
				var total time.Duration
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					s := newScheduler(b, pool, sink, table, scheduler.WithWorkers(workers))
					if _, err := s.ScheduleWith(ctx, scheduler.Exec(s), time.Now().Add(-time.Second), msgs...); err != nil {
						b.Fatal(err)
					}
					start0 := sink.n.Load()
					runCtx, cancel := context.WithCancel(ctx)
					done := make(chan struct{})
					b.StartTimer()
					start := time.Now()
					go func() { defer close(done); _ = s.Run(runCtx) }()
					for sink.n.Load()-start0 < n {
						time.Sleep(time.Millisecond)
					}
					// The last batch is counted just before its commit.
					for left, err := s.Count(ctx); left != 0 || err != nil; left, err = s.Count(ctx) {
						time.Sleep(time.Millisecond)
					}
					total += time.Since(start)
					b.StopTimer()
					cancel()
					<-done
					if left, _ := s.Count(ctx); left != 0 {
						b.Fatalf("%d messages left", left)
					}
				}
				b.ReportMetric(float64(n*b.N)/total.Seconds(), "msgs/s")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// BenchmarkLatenessAt1kPerSecond schedules 1,000 messages per second for
// three seconds (one Schedule call, one transaction, per message), each due
// 100 ms after it is scheduled, with one scheduler instance running, and
// reports how late each message was handed to the sink: p50, p99 and max of
// (hand-off commit time − due time), both read from the database clock.
func BenchmarkLatenessAt1kPerSecond(b *testing.B) {
	// Default options: every message is due within the 500 ms poll
	// interval, so every Schedule sends a NOTIFY.
	b.Run("poll-500ms-default", func(b *testing.B) { benchLateness(b) })
	// A 50 ms poll interval: messages due later than that are found by the
	// poller's next look, so Schedule sends no NOTIFY.
	b.Run("poll-50ms", func(b *testing.B) { benchLateness(b, scheduler.WithPollInterval(50*time.Millisecond)) })
}

func benchLateness(b *testing.B, opts ...scheduler.Option) {
	const (
		rate     = 1000
		duration = 3 * time.Second
		delay    = 100 * time.Millisecond
	)
	pool := testenv.Postgres(b)
	ctx := context.Background()
	var p50s, p99s, maxs []float64
	for i := 0; i < b.N; i++ {
		sink := newTableSink(b, pool)
		s := newScheduler(b, pool, sink, "", opts...)
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = s.Run(runCtx) }()
		time.Sleep(200 * time.Millisecond)

		total := int(duration.Seconds() * rate)
		const producers = 32
		start := time.Now()
		var wg sync.WaitGroup
		var failed atomic.Int64
		for p := range producers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := p; k < total; k += producers {
					at := start.Add(time.Duration(k) * time.Second / rate)
					time.Sleep(time.Until(at))
					if _, err := s.ScheduleWith(ctx, scheduler.Exec(s), time.Now().Add(delay), reminder{N: k}); err != nil {
						failed.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		if failed.Load() > 0 {
			b.Fatalf("%d Schedule calls failed", failed.Load())
		}
		achieved := float64(total) / time.Since(start).Seconds()
		sink.waitCount(b, total, 10*time.Second)
		cancel()
		<-done
		var p50, p99, mx float64
		err := pool.QueryRow(ctx, `SELECT
			percentile_cont(0.5) WITHIN GROUP (ORDER BY l), percentile_cont(0.99) WITHIN GROUP (ORDER BY l), max(l)
			FROM (SELECT EXTRACT(EPOCH FROM delivered_at - due_at) * 1000 AS l FROM `+sink.table+`) x`).Scan(&p50, &p99, &mx)
		if err != nil {
			b.Fatal(err)
		}
		var early int
		_ = pool.QueryRow(ctx, `SELECT count(*) FROM `+sink.table+` WHERE delivered_at < due_at`).Scan(&early)
		if early > 0 {
			b.Fatalf("%d messages handed off before they were due", early)
		}
		b.Logf("scheduled %d at %.0f msgs/s: lateness p50 %.1f ms, p99 %.1f ms, max %.1f ms", total, achieved, p50, p99, mx)
		p50s, p99s, maxs = append(p50s, p50), append(p99s, p99), append(maxs, mx)
	}
	b.ReportMetric(mean(p50s), "p50-ms")
	b.ReportMetric(mean(p99s), "p99-ms")
	b.ReportMetric(mean(maxs), "max-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkEndToEndLateness is the same load through the real outbox and its
// relay to an in-memory bus: lateness is measured where a consumer receives
// the message (receive time − due time, local clock).
func BenchmarkEndToEndLateness(b *testing.B) {
	const (
		rate     = 1000
		duration = 3 * time.Second
		delay    = 100 * time.Millisecond
	)
	pool := testenv.Postgres(b)
	ctx := context.Background()
	var p50s, p99s []float64
	for i := 0; i < b.N; i++ {
		bus := gochannel.New(gochannel.Config{Buffer: 4096}, watermill.NopLogger{})
		ob := newOutbox(b, pool, bus)
		s := newScheduler(b, pool, ob, "")
		sub, err := bus.Subscribe(ctx, "test.reminder")
		if err != nil {
			b.Fatal(err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = s.Run(runCtx) }()
		total := int(duration.Seconds() * rate)
		lateness := make([]float64, 0, total)
		recvDone := make(chan struct{})
		go func() {
			defer close(recvDone)
			for m := range sub {
				due, _ := time.Parse(time.RFC3339Nano, m.Metadata.Get(router.KeyDueAt))
				lateness = append(lateness, float64(time.Since(due))/float64(time.Millisecond))
				m.Ack()
				if len(lateness) == total {
					return
				}
			}
		}()
		time.Sleep(200 * time.Millisecond)
		start := time.Now()
		var wg sync.WaitGroup
		const producers = 32
		for p := range producers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := p; k < total; k += producers {
					time.Sleep(time.Until(start.Add(time.Duration(k) * time.Second / rate)))
					if _, err := s.ScheduleWith(ctx, scheduler.Exec(s), time.Now().Add(delay), reminder{N: k}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		select {
		case <-recvDone:
		case <-time.After(15 * time.Second):
			b.Fatalf("received %d of %d", len(lateness), total)
		}
		cancel()
		<-done
		p50, p99 := percentile(lateness, 0.5), percentile(lateness, 0.99)
		b.Logf("end to end through outbox+relay: %d msgs, lateness p50 %.1f ms, p99 %.1f ms", total, p50, p99)
		p50s, p99s = append(p50s, p50), append(p99s, p99)
	}
	b.ReportMetric(mean(p50s), "p50-ms")
	b.ReportMetric(mean(p99s), "p99-ms")
	b.ReportMetric(0, "ns/op")
}

func itoa(n int) string { return strconv.Itoa(n) }

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sum := 0.0
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

func percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// BenchmarkSchedule measures Schedule calls (one message, one autocommit
// transaction each) from 32 concurrent goroutines, with the message due
// within the poll interval (a NOTIFY is sent) and beyond it (none is sent).
// No poller runs.
func BenchmarkSchedule(b *testing.B) {
	pool := testenv.Postgres(b)
	for _, c := range []struct {
		name  string
		delay time.Duration
	}{{"notify", 100 * time.Millisecond}, {"no-notify", time.Hour}} {
		b.Run(c.name, func(b *testing.B) {
			s := newScheduler(b, pool, newTableSink(b, pool), "")
			ctx := context.Background()
			b.SetParallelism(16) // 2 cores × 16 = 32 goroutines
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.ScheduleWith(ctx, scheduler.Exec(s), time.Now().Add(c.delay), reminder{N: 1}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
