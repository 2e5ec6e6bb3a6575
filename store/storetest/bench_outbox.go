package storetest

import (
	"context"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/store"
)

// OutboxBench tells [BenchOutbox] how to run one database's raw SQL beside
// the outbox.
type OutboxBench[TTx any] struct {
	Harness[TTx]
	// RawDrain empties table with the database's bare claim-and-delete
	// loop (claim up to batch rows, read their columns, delete them,
	// commit) on conns connections of d, with no decoding and no
	// publishing: the limit the SQL alone allows.
	RawDrain func(tb testing.TB, d store.Driver[TTx], table string, conns, batch int)
	// BusinessDDL creates the table bench_business with an auto-generated
	// key and an integer column v; BusinessInsert inserts one row into it.
	BusinessDDL, BusinessInsert string
	// PollInterval is the relay's poll interval in the cross-process
	// latency variant (default 100ms).
	PollInterval time.Duration
}

// BenchOutbox runs the outbox benchmarks on one driver, each beside the
// database's raw SQL doing the same job: backlog drain (relay vs raw
// claim-and-delete), producer overhead (business insert + Publish vs the
// business insert alone) and commit-to-handler latency at 1 000 msgs/s.
// HEXERACT_BENCH_ROWS sets the backlog (default 20000).
func BenchOutbox[TTx any](b *testing.B, ob OutboxBench[TTx]) {
	b.Run("Drain", func(b *testing.B) { benchDrain(b, ob) })
	b.Run("ProducerOverhead", func(b *testing.B) { benchProducer(b, ob) })
	b.Run("CommitToHandlerLatency", func(b *testing.B) { benchLatency(b, ob) })
}

func benchRows() int {
	if n, err := strconv.Atoi(os.Getenv("HEXERACT_BENCH_ROWS")); err == nil && n > 0 {
		return n
	}
	return 20000
}

func benchPayload(i int) Event { return Event{Key: "", N: i} }

func fill[TTx any](tb testing.TB, d store.Driver[TTx], o *outbox.Outbox[TTx], n int) {
	tb.Helper()
	msgs := make([]router.Message, 0, 1000)
	for done := 0; done < n; done += len(msgs) {
		msgs = msgs[:0]
		for i := done; i < min(done+1000, n); i++ {
			msgs = append(msgs, benchPayload(i))
		}
		if err := d.InTx(context.Background(), func(ctx context.Context, tx TTx) error {
			_, err := o.Publish(ctx, tx, msgs...)
			return err
		}); err != nil {
			tb.Fatal(err)
		}
	}
}

func benchDrain[TTx any](b *testing.B, ob OutboxBench[TTx]) {
	n := benchRows()
	d := ob.OpenFresh(b)
	o := newOutbox(b, d)
	var raw, relay time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		fill(b, d, o, n)
		b.StartTimer()
		start := time.Now()
		ob.RawDrain(b, d, "storetest_outbox", 4, 256)
		raw += time.Since(start)
		if st := pendingRows(b, o); st.Pending != 0 {
			b.Fatalf("raw drain left %d rows", st.Pending)
		}
		b.StopTimer()
		fill(b, d, o, n)
		b.StartTimer()
		c := newCounter()
		start = time.Now()
		stop := startRelay(b, d, c, outbox.WithWorkers(4), outbox.WithBatchSize(256))
		waitUntil(b, 5*time.Minute, "the relay drain", func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.total >= n
		})
		relay += time.Since(start)
		stop()
	}
	rawRate := float64(n*b.N) / raw.Seconds()
	relayRate := float64(n*b.N) / relay.Seconds()
	b.ReportMetric(rawRate, "raw_rows/s")
	b.ReportMetric(relayRate, "relay_msgs/s")
	b.ReportMetric(relayRate/rawRate, "relay/raw")
}

func benchProducer[TTx any](b *testing.B, ob OutboxBench[TTx]) {
	d := ob.OpenFresh(b)
	o := newOutbox(b, d)
	ctx := context.Background()
	if err := d.InTx(ctx, func(ctx context.Context, tx TTx) error { return ob.Exec(ctx, tx, ob.BusinessDDL) }); err != nil {
		b.Fatal(err)
	}
	var plain, with time.Duration
	const rounds = 500 // per iteration, alternating
	b.ResetTimer()
	for i := range b.N * rounds {
		start := time.Now()
		if err := d.InTx(ctx, func(ctx context.Context, tx TTx) error { return ob.Exec(ctx, tx, ob.BusinessInsert) }); err != nil {
			b.Fatal(err)
		}
		plain += time.Since(start)
		start = time.Now()
		if err := o.InTx(ctx, func(ctx context.Context, tx TTx) error {
			if err := ob.Exec(ctx, tx, ob.BusinessInsert); err != nil {
				return err
			}
			_, err := o.Publish(ctx, tx, benchPayload(i))
			return err
		}); err != nil {
			b.Fatal(err)
		}
		with += time.Since(start)
	}
	b.ReportMetric(float64(plain.Microseconds())/float64(b.N*rounds), "business_us/tx")
	b.ReportMetric(float64(with.Microseconds())/float64(b.N*rounds), "business+publish_us/tx")
	b.ReportMetric(100*(with.Seconds()/plain.Seconds()-1), "overhead_%")
}

// latencyPub records, per message id, when the relay handed it over.
type latencyPub struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (p *latencyPub) Publish(_ string, msgs ...*message.Message) error {
	now := time.Now()
	p.mu.Lock()
	for _, m := range msgs {
		p.seen[m.UUID] = now
	}
	p.mu.Unlock()
	return nil
}

func (p *latencyPub) Close() error { return nil }

func benchLatency[TTx any](b *testing.B, ob OutboxBench[TTx]) {
	poll := ob.PollInterval
	if poll <= 0 {
		poll = 100 * time.Millisecond
	}
	for _, variant := range []string{"same_process", "cross_process"} {
		b.Run(variant, func(b *testing.B) {
			url := ob.URL(b)
			d := ob.Open(b, url)
			o := newOutbox(b, d)
			relayStore := store.Store(d)
			if variant == "cross_process" {
				relayStore = ob.Open(b, url) // another driver value: in-process signals do not reach it
			}
			pub := &latencyPub{seen: map[string]time.Time{}}
			var r *outbox.Relay
			var err error
			opts := []outbox.RelayOption{outbox.WithLogger(quiet()), outbox.WithPollInterval(poll)}
			if variant == "same_process" {
				r, err = o.NewRelay(pub, opts...)
			} else {
				r, err = outbox.NewRelay(relayStore, pub, append(opts, outbox.WithTable("storetest_outbox"))...)
			}
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { _ = r.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			time.Sleep(200 * time.Millisecond)
			const rate, seconds = 1000, 3
			total := rate * seconds * b.N
			committed := make(map[string]time.Time, total)
			var cmu sync.Mutex
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			const producers = 8
			for p := range producers {
				wg.Go(func() {
					for i := p; i < total; i += producers {
						at := start.Add(time.Duration(i) * time.Second / rate)
						time.Sleep(time.Until(at))
						var id string
						if err := o.InTx(context.Background(), func(ctx context.Context, tx TTx) error {
							ids, err := o.Publish(ctx, tx, benchPayload(i))
							if err == nil {
								id = ids[0]
							}
							return err
						}); err != nil {
							b.Error(err)
							return
						}
						now := time.Now()
						cmu.Lock()
						committed[id] = now
						cmu.Unlock()
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			waitUntil(b, 30*time.Second, "every message", func() bool {
				pub.mu.Lock()
				defer pub.mu.Unlock()
				return len(pub.seen) >= total
			})
			b.StopTimer()
			lat := make([]float64, 0, total)
			pub.mu.Lock()
			for id, at := range committed {
				lat = append(lat, float64(max(pub.seen[id].Sub(at), 0).Microseconds())/1000)
			}
			pub.mu.Unlock()
			slices.Sort(lat)
			b.ReportMetric(lat[len(lat)/2], "p50_ms")
			b.ReportMetric(lat[len(lat)*99/100], "p99_ms")
			b.ReportMetric(lat[len(lat)-1], "max_ms")
			b.ReportMetric(float64(total)/elapsed.Seconds(), "commits/s")
			if variant == "cross_process" && !relayStore.Notifier().CrossProcess() {
				b.Logf("cross-process wake-up by polling every %v", poll)
			}
		})
	}
}
