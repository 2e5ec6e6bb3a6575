package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
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
)

// latencyRun commits one message per transaction at rate msgs/s for n
// messages (8 producer goroutines, paced on a fixed schedule) and measures,
// per message, the time from the return of Commit to the moment the
// handler (a GoChannel subscriber) received it. produce writes message i in
// tx; the handler side reads the index from the payload's user_id.
func latencyRun(b *testing.B, pool *pgxpool.Pool, sub message.Subscriber, n, rate int,
	produce func(ctx context.Context, tx pgx.Tx, i int) error, afterCommit func()) (p50, p99, worst time.Duration, achieved float64) {
	b.Helper()
	ctx := context.Background()
	committed := make([]atomic.Int64, n)
	received := make([]atomic.Int64, n)
	ch, err := sub.Subscribe(ctx, "users.registered")
	if err != nil {
		b.Fatal(err)
	}
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		for m := range ch {
			now := time.Now().UnixNano()
			var e UserRegistered
			if err := json.Unmarshal(m.Payload, &e); err == nil {
				var i int
				if _, err := fmt.Sscan(e.UserID, &i); err == nil && i < n && received[i].CompareAndSwap(0, now) {
					if got.Add(1) == int64(n) {
						close(done)
					}
				}
			}
			m.Ack()
		}
	}()
	jobs := make(chan int, n)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range jobs {
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return produce(ctx, tx, i) })
				committed[i].Store(time.Now().UnixNano())
				if err != nil {
					b.Error(err)
				} else if afterCommit != nil {
					afterCommit()
				}
			}
		})
	}
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	achieved = float64(n) / time.Since(start).Seconds()
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatalf("only %d of %d messages arrived", got.Load(), n)
	}
	lat := make([]time.Duration, n)
	for i := range n {
		lat[i] = max(0, time.Duration(received[i].Load()-committed[i].Load()))
	}
	slices.Sort(lat)
	return lat[n*50/100], lat[n*99/100], lat[n-1], achieved
}

// BenchmarkCommitToHandlerLatency measures commit-to-handler latency at a
// steady 1000 msgs/s (HEXERACT_BENCH_RATE), one message per transaction,
// HEXERACT_BENCH_LATENCY_MSGS messages (default 5000): Hexeract's relay
// (LISTEN/NOTIFY wake-up) into GoChannel, and Watermill's forwarder over
// watermill-sql/v4 with a 10 ms poll interval, in the same run.
func BenchmarkCommitToHandlerLatency(b *testing.B) {
	pool := testenv.Postgres(b)
	n, rate := envInt("HEXERACT_BENCH_LATENCY_MSGS", 5000), envInt("HEXERACT_BENCH_RATE", 1000)

	// hexeract: the producer calls Signal after commit (Outbox.InTx does),
	// which wakes the relay in this process at once.
	// hexeract_cross_process: the relay ignores in-process signals and is
	// woken by the notification Signal sends (as a relay in another process).
	// hexeract_notify_in_tx: WithNotifyInTx, no Signal; the relay is woken by
	// the notification PostgreSQL delivers at commit.
	for _, v := range []struct {
		name         string
		signal, inTx bool
		noLocal      bool
	}{{"hexeract", true, false, false}, {"hexeract_cross_process", true, false, true}, {"hexeract_notify_in_tx", false, true, true}} {
		b.Run(v.name, func(b *testing.B) {
			var opts []outbox.Option
			if v.inTx {
				opts = append(opts, outbox.WithNotifyInTx())
			}
			_, ob, _ := newOutbox(b, opts...)
			for range b.N {
				gc := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 1024}, watermill.NopLogger{})
				r, err := ob.NewRelay(gc)
				if err != nil {
					b.Fatal(err)
				}
				if v.noLocal {
					outbox.IgnoreLocalSignals(r)
				}
				ctx, cancel := context.WithCancel(context.Background())
				go func() { _ = r.Run(ctx) }()
				time.Sleep(200 * time.Millisecond) // relay connected and listening
				var after func()
				if v.signal {
					after = ob.Signal
				}
				p50, p99, mx, achieved := latencyRun(b, pool, gc, n, rate, func(ctx context.Context, tx pgx.Tx, i int) error {
					_, err := ob.Publish(ctx, tx, UserRegistered{UserID: fmt.Sprint(i), Email: "someone@example.com"})
					return err
				}, after)
				cancel()
				_ = gc.Close()
				reportLatency(b, p50, p99, mx, achieved)
			}
		})
	}

	b.Run("watermill_forwarder_10ms_poll", func(b *testing.B) {
		ctx := context.Background()
		for range b.N {
			fwdTopic := "fwd_lat_" + testenv.Suffix()
			schema := wmsql.DefaultPostgreSQLSchema{}
			offsets := wmsql.DefaultPostgreSQLOffsetsAdapter{}
			b.Cleanup(func() {
				_, _ = pool.Exec(ctx, `DROP TABLE IF EXISTS `+schema.MessagesTable(fwdTopic)+`, `+offsets.MessagesOffsetsTable(fwdTopic))
			})
			db := wmsql.BeginnerFromPgx(pool)
			initPub, err := wmsql.NewPublisher(db, wmsql.PublisherConfig{SchemaAdapter: schema, AutoInitializeSchema: true}, watermill.NopLogger{})
			if err != nil {
				b.Fatal(err)
			}
			// Create the table before the run (one message, consumed below as index n-1... not counted).
			warm, _ := router.NewMessage(ctx, UserRegistered{UserID: "warmup"}, router.EncodeOptions{})
			if err := forwarder.NewPublisher(initPub, forwarder.PublisherConfig{ForwarderTopic: fwdTopic}).Publish("users.registered", warm); err != nil {
				b.Fatal(err)
			}
			sub, err := wmsql.NewSubscriber(db, wmsql.SubscriberConfig{
				SchemaAdapter: schema, OffsetsAdapter: offsets, InitializeSchema: true, PollInterval: 10 * time.Millisecond,
			}, watermill.NopLogger{})
			if err != nil {
				b.Fatal(err)
			}
			gc := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 1024}, watermill.NopLogger{})
			f, err := forwarder.NewForwarder(sub, gc, watermill.NopLogger{}, forwarder.Config{ForwarderTopic: fwdTopic, CloseTimeout: 5 * time.Second})
			if err != nil {
				b.Fatal(err)
			}
			go func() { _ = f.Run(ctx) }()
			<-f.Running()
			p50, p99, mx, achieved := latencyRun(b, pool, gc, n, rate, func(ctx context.Context, tx pgx.Tx, i int) error {
				pub, err := wmsql.NewPublisher(wmsql.TxFromPgx(tx), wmsql.PublisherConfig{SchemaAdapter: schema}, watermill.NopLogger{})
				if err != nil {
					return err
				}
				wm, err := router.NewMessage(ctx, UserRegistered{UserID: fmt.Sprint(i), Email: "someone@example.com"}, router.EncodeOptions{})
				if err != nil {
					return err
				}
				return forwarder.NewPublisher(pub, forwarder.PublisherConfig{ForwarderTopic: fwdTopic}).Publish("users.registered", wm)
			}, nil)
			_ = f.Close()
			_ = sub.Close()
			_ = gc.Close()
			reportLatency(b, p50, p99, mx, achieved)
		}
	})
}

func reportLatency(b *testing.B, p50, p99, mx time.Duration, achieved float64) {
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99_ms")
	b.ReportMetric(float64(mx.Microseconds())/1000, "max_ms")
	b.ReportMetric(achieved, "commits/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkProducerOverhead measures what Publish adds to a business
// transaction: each client alternates a transaction that inserts one
// business row and a transaction that inserts the same row plus one
// outbox message, and the mean durations are compared. No relay runs.
// signal_after_commit is the default (Publish, commit, Signal);
// notify_in_tx uses WithNotifyInTx.
func BenchmarkProducerOverhead(b *testing.B) {
	for _, tc := range []struct {
		clients int
		inTx    bool
	}{{1, false}, {8, false}, {1, true}, {8, true}} {
		name := "signal_after_commit"
		if tc.inTx {
			name = "notify_in_tx"
		}
		b.Run(fmt.Sprintf("%s/clients=%d", name, tc.clients), func(b *testing.B) {
			clients := tc.clients
			pool := testenv.Postgres(b)
			ctx := context.Background()
			var opts []outbox.Option
			if tc.inTx {
				opts = append(opts, outbox.WithNotifyInTx())
			}
			_, ob, _ := newOutbox(b, opts...)
			business := "bench_users_" + testenv.Suffix()
			if _, err := pool.Exec(ctx, `CREATE TABLE `+business+` (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _, _ = pool.Exec(ctx, `DROP TABLE `+business) })
			insert := `INSERT INTO ` + business + ` (email) VALUES ($1)`
			var plainNs, outboxNs atomic.Int64
			per := max(1, b.N/clients)
			b.ResetTimer()
			var wg sync.WaitGroup
			for c := range clients {
				wg.Go(func() {
					for i := range per {
						email := fmt.Sprintf("user-%d-%d@example.com", c, i)
						t0 := time.Now()
						if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
							_, err := tx.Exec(ctx, insert, email)
							return err
						}); err != nil {
							b.Error(err)
							return
						}
						t1 := time.Now()
						if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
							if _, err := tx.Exec(ctx, insert, email); err != nil {
								return err
							}
							_, err := ob.Publish(ctx, tx, UserRegistered{UserID: fmt.Sprint(i), Email: email})
							return err
						}); err != nil {
							b.Error(err)
							return
						}
						if !tc.inTx {
							ob.Signal()
						}
						t2 := time.Now()
						plainNs.Add(int64(t1.Sub(t0)))
						outboxNs.Add(int64(t2.Sub(t1)))
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			total := float64(per * clients)
			plain, withOutbox := float64(plainNs.Load())/total, float64(outboxNs.Load())/total
			b.ReportMetric(plain/1e3, "us/tx_business")
			b.ReportMetric(withOutbox/1e3, "us/tx_business+publish")
			b.ReportMetric((withOutbox/plain-1)*100, "overhead_%")
		})
	}
}
