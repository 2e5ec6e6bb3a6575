package outbox_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/store/postgres"
)

// benchEvent encodes to a 102-byte JSON payload, the size used for the
// Watermill figures in the outbox issue.
func benchEvent(i int) UserRegistered {
	return UserRegistered{UserID: fmt.Sprintf("%036d", i), Email: "someone.with.a.long.address@example.com"}
}

func benchSize(def int) int { return envInt("HEXERACT_BENCH_ROWS", def) }

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchShape returns the batch size and the number of workers (relay) or
// connections (raw SQL) used by the drain benchmarks:
// HEXERACT_BENCH_BATCH (default 256) and HEXERACT_BENCH_WORKERS (default 4).
func benchShape() (batch, workers int) {
	return envInt("HEXERACT_BENCH_BATCH", 256), envInt("HEXERACT_BENCH_WORKERS", 4)
}

// fillOutbox writes n messages into the outbox, 5000 per transaction.
func fillOutbox(tb testing.TB, pool *pgxpool.Pool, ob *outbox.Outbox[pgx.Tx], n int) {
	tb.Helper()
	ctx := context.Background()
	for done := 0; done < n; {
		k := min(5000, n-done)
		msgs := make([]router.Message, k)
		for i := range msgs {
			msgs[i] = benchEvent(done + i)
		}
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := ob.Publish(ctx, tx, msgs...)
			return err
		}); err != nil {
			tb.Fatal(err)
		}
		done += k
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE `+ob.Table()); err != nil {
		tb.Fatal(err)
	}
}

// rawDrain empties the outbox table with the bare claim-and-delete loop
// (no decoding, no publishing) on conns connections: the SQL limit.
func rawDrain(tb testing.TB, pool *pgxpool.Pool, table string, conns, batch int) time.Duration {
	tb.Helper()
	sql := `DELETE FROM ` + table + ` d USING (SELECT seq FROM ` + table +
		` ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED) s WHERE d.seq = s.seq RETURNING d.seq, d.id, d.topic, d.metadata, d.payload`
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for range conns {
		wg.Go(func() {
			ctx := context.Background()
			for {
				rows, err := pool.Query(ctx, sql, batch)
				if err != nil {
					errs <- err
					return
				}
				n := 0
				for rows.Next() {
					n++
				}
				if err := rows.Err(); err != nil {
					errs <- err
					return
				}
				if n == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	return time.Since(start)
}

// consume counts messages arriving on topic of a GoChannel and closes done
// when n arrived.
func consume(tb testing.TB, sub message.Subscriber, topic string, n int64) (done chan struct{}, count *atomic.Int64) {
	tb.Helper()
	ch, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		tb.Fatal(err)
	}
	done = make(chan struct{})
	count = new(atomic.Int64)
	go func() {
		for m := range ch {
			m.Ack()
			if count.Add(1) == n {
				close(done)
			}
		}
	}()
	return done, count
}

func waitDone(tb testing.TB, done chan struct{}, count *atomic.Int64, n int, what string) {
	tb.Helper()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		tb.Fatalf("%s: delivered %d of %d within 5 minutes", what, count.Load(), n)
	}
}

// BenchmarkDrain compares, in one run on the same database and the same
// 102-byte events: (a) the raw SQL drain limit, (b) the Hexeract relay
// draining the backlog into GoChannel (and, for reference, into a publisher
// that only counts), (c) Watermill's forwarder over
// watermill-sql/v4 (default PostgreSQL schema and offsets adapter)
// draining the same number of messages into GoChannel. Backlog size:
// HEXERACT_BENCH_ROWS (default 50000). Run with -benchtime=1x.
func BenchmarkDrain(b *testing.B) {
	n := benchSize(50000)
	pool := testenv.Postgres(b)
	ctx := context.Background()
	batch, workers := benchShape()
	var raw, relay, fwd, rawCPU, relayCPU, bare []float64
	for range b.N {
		b.StopTimer()
		// (a) raw SQL drain.
		_, ob, table := newOutbox(b)
		fillOutbox(b, pool, ob, n)
		b.StartTimer()
		cpu0 := processCPU()
		d := rawDrain(b, pool, table, workers, batch)
		raw = append(raw, float64(n)/d.Seconds())
		rawCPU = append(rawCPU, (processCPU()-cpu0).Seconds()*1e6/float64(n))

		// (b) Hexeract relay into GoChannel.
		b.StopTimer()
		fillOutbox(b, pool, ob, n)
		gc := gochannel.NewGoChannel(benchGoChannelConfig(), watermill.NopLogger{})
		done, count := consume(b, gc, "users.registered", int64(n))
		r, err := outbox.NewRelay(postgres.New(pool), gc, outbox.WithTable(table), outbox.WithBatchSize(batch), outbox.WithWorkers(workers))
		if err != nil {
			b.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		b.StartTimer()
		start, cpu0 := time.Now(), processCPU()
		go func() { _ = r.Run(rctx) }()
		waitDone(b, done, count, n, "hexeract relay")
		relay = append(relay, float64(n)/time.Since(start).Seconds())
		relayCPU = append(relayCPU, (processCPU()-cpu0).Seconds()*1e6/float64(n))
		b.StopTimer()
		cancel()
		_ = gc.Close()

		// (b') the relay into a publisher that only counts: its own cost.
		fillOutbox(b, pool, ob, n)
		cnt := &counting{}
		r, err = outbox.NewRelay(postgres.New(pool), cnt, outbox.WithTable(table), outbox.WithBatchSize(batch), outbox.WithWorkers(workers))
		if err != nil {
			b.Fatal(err)
		}
		rctx, cancel = context.WithCancel(ctx)
		b.StartTimer()
		start = time.Now()
		go func() { _ = r.Run(rctx) }()
		for deadline := start.Add(5 * time.Minute); cnt.n.Load() < int64(n); time.Sleep(200 * time.Microsecond) {
			if time.Now().After(deadline) {
				b.Fatalf("relay into counting publisher: %d of %d", cnt.n.Load(), n)
			}
		}
		bare = append(bare, float64(n)/time.Since(start).Seconds())
		b.StopTimer()
		cancel()

		// (c) Watermill forwarder over watermill-sql/v4.
		if os.Getenv("HEXERACT_BENCH_SKIP_FORWARDER") == "" {
			fwd = append(fwd, forwarderDrain(b, pool, n))
		} else {
			fwd = append(fwd, 1)
		}
		b.StartTimer()
	}
	b.StopTimer()
	rawRate, relayRate, fwdRate := median(raw), median(relay), median(fwd)
	b.ReportMetric(rawRate, "raw_sql_msgs/s")
	b.ReportMetric(relayRate, "relay_msgs/s")
	b.ReportMetric(median(bare), "relay_counting_msgs/s")
	b.ReportMetric(fwdRate, "forwarder_msgs/s")
	b.ReportMetric(relayRate/rawRate, "relay/raw")
	b.ReportMetric(relayRate/fwdRate, "relay/forwarder")
	b.ReportMetric(median(rawCPU), "raw_go_cpu_us/msg")
	b.ReportMetric(median(relayCPU), "relay_go_cpu_us/msg")
	b.ReportMetric(0, "ns/op")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// forwarderDrain fills watermill-sql with n enveloped messages through
// forwarder.NewPublisher and times Watermill's forwarder moving them to
// GoChannel. The poll interval is 10 ms (the default is 1 s).
func forwarderDrain(b *testing.B, pool *pgxpool.Pool, n int) float64 {
	b.Helper()
	ctx := context.Background()
	suffix := testenv.Suffix()
	fwdTopic := "fwd_bench_" + suffix
	schema := wmsql.DefaultPostgreSQLSchema{}
	offsets := wmsql.DefaultPostgreSQLOffsetsAdapter{}
	b.Cleanup(func() {
		_, _ = pool.Exec(ctx, `DROP TABLE IF EXISTS `+schema.MessagesTable(fwdTopic)+`, `+offsets.MessagesOffsetsTable(fwdTopic))
	})
	db := wmsql.BeginnerFromPgx(pool)
	sqlPub, err := wmsql.NewPublisher(db, wmsql.PublisherConfig{SchemaAdapter: schema, AutoInitializeSchema: true}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	pub := forwarder.NewPublisher(sqlPub, forwarder.PublisherConfig{ForwarderTopic: fwdTopic})
	for done := 0; done < n; {
		k := min(1000, n-done)
		msgs := make([]*message.Message, k)
		for i := range msgs {
			wm, err := router.NewMessage(ctx, benchEvent(done+i), router.EncodeOptions{})
			if err != nil {
				b.Fatal(err)
			}
			msgs[i] = wm
		}
		if err := pub.Publish("users.registered", msgs...); err != nil {
			b.Fatal(err)
		}
		done += k
	}
	sub, err := wmsql.NewSubscriber(db, wmsql.SubscriberConfig{
		SchemaAdapter: schema, OffsetsAdapter: offsets, InitializeSchema: true, PollInterval: 10 * time.Millisecond,
	}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	gc := gochannel.NewGoChannel(benchGoChannelConfig(), watermill.NopLogger{})
	defer gc.Close()
	done, count := consume(b, gc, "users.registered", int64(n))
	f, err := forwarder.NewForwarder(sub, gc, watermill.NopLogger{}, forwarder.Config{ForwarderTopic: fwdTopic, CloseTimeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	start := time.Now()
	go func() { _ = f.Run(ctx) }()
	waitDone(b, done, count, n, "watermill forwarder")
	rate := float64(n) / time.Since(start).Seconds()
	b.StopTimer()
	_ = f.Close()
	_ = sub.Close()
	return rate
}

// processCPU returns the CPU time (user + system) this process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRelayDrain times only the Hexeract relay draining the backlog
// into GoChannel (for profiling; BenchmarkDrain has the comparison).
func BenchmarkRelayDrain(b *testing.B) {
	n := benchSize(50000)
	pool := testenv.Postgres(b)
	_, ob, table := newOutbox(b)
	batch, workers := benchShape()
	var rates []float64
	for range b.N {
		b.StopTimer()
		fillOutbox(b, pool, ob, n)
		gc := gochannel.NewGoChannel(benchGoChannelConfig(), watermill.NopLogger{})
		done, count := consume(b, gc, "users.registered", int64(n))
		r, err := outbox.NewRelay(postgres.New(pool), gc, outbox.WithTable(table), outbox.WithBatchSize(batch), outbox.WithWorkers(workers))
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		b.StartTimer()
		start := time.Now()
		go func() { _ = r.Run(ctx) }()
		waitDone(b, done, count, n, "hexeract relay")
		rates = append(rates, float64(n)/time.Since(start).Seconds())
		b.StopTimer()
		cancel()
		_ = gc.Close()
	}
	b.ReportMetric(median(rates), "msgs/s")
	b.ReportMetric(0, "ns/op")
}

// benchGoChannelConfig is the GoChannel the relay and the forwarder publish
// into: GoChannel's defaults (as hexeract.App uses it) with a 4096-message
// subscriber buffer. HEXERACT_BENCH_GOCHANNEL_BLOCK=1 makes Publish return
// only once the subscriber acknowledged each message.
func benchGoChannelConfig() gochannel.Config {
	return gochannel.Config{OutputChannelBuffer: 4096, BlockPublishUntilSubscriberAck: os.Getenv("HEXERACT_BENCH_GOCHANNEL_BLOCK") != ""}
}

// counting is a publisher that only counts: the relay's own cost.
type counting struct{ n atomic.Int64 }

func (c *counting) Publish(_ string, msgs ...*message.Message) error {
	c.n.Add(int64(len(msgs)))
	return nil
}

func (c *counting) Close() error { return nil }
