package outbox_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/hexeract/hexeract/adapters/amqp"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/store/postgres"
)

// keyedBenchEvent is benchEvent (the same 102-byte JSON payload) with an
// ordering key, which is not part of the payload.
type keyedBenchEvent struct {
	UserRegistered
	key string
}

func (e keyedBenchEvent) OrderingKey() string { return e.key }

// fillBench writes n bench events into the outbox, 5000 per transaction,
// spread round-robin over keys ordering keys (none when keys is 0).
func fillBench(tb testing.TB, pool *pgxpool.Pool, ob *outbox.Outbox[pgx.Tx], n, keys int) {
	tb.Helper()
	ctx := context.Background()
	for done := 0; done < n; {
		k := min(5000, n-done)
		msgs := make([]router.Message, k)
		for i := range msgs {
			ev := benchEvent(done + i)
			if keys > 0 {
				msgs[i] = keyedBenchEvent{UserRegistered: ev, key: fmt.Sprint("key-", (done+i)%keys)}
			} else {
				msgs[i] = ev
			}
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

// published counts the messages a publisher accepted (Publish returned
// nil): for RabbitMQ with publisher confirms, the messages the broker took.
type published struct {
	message.Publisher
	n atomic.Int64
}

func (p *published) Publish(topic string, msgs ...*message.Message) error {
	err := p.Publisher.Publish(topic, msgs...)
	if err == nil {
		p.n.Add(int64(len(msgs)))
	}
	return err
}

// drainInto starts a relay on table into pub and returns the time until
// delivered() reached n (then stops the relay).
func drainInto(b *testing.B, pool *pgxpool.Pool, table string, pub message.Publisher, n int, delivered func() int64, opts ...outbox.RelayOption) time.Duration {
	b.Helper()
	batch, workers := benchShape()
	r, err := outbox.NewRelay(postgres.New(pool), pub, append([]outbox.RelayOption{outbox.WithTable(table), outbox.WithBatchSize(batch), outbox.WithWorkers(workers)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	start := time.Now()
	go func() { defer close(done); _ = r.Run(ctx) }()
	for deadline := start.Add(5 * time.Minute); delivered() < int64(n); time.Sleep(200 * time.Microsecond) {
		if time.Now().After(deadline) {
			b.Fatalf("relay delivered %d of %d rows within 5 minutes", delivered(), n)
		}
	}
	took := time.Since(start)
	cancel()
	<-done
	return took
}

// BenchmarkRelayKeys measures, in one run on the same database and the
// same 102-byte events, the relay draining a backlog of
// HEXERACT_BENCH_ROWS rows (default 20000) with no ordering key, spread
// over 50 keys and over 1000 keys, into three publishers: GoChannel (timed
// until its subscriber received every message), a publisher that only
// counts, and RabbitMQ at HEXERACT_TEST_AMQP (Hexeract's amqp publisher,
// publisher confirms on, a bound durable queue; timed until RabbitMQ
// confirmed every message). It reports rows/s per case and the ratios of
// the keyed rates to the rate without keys on the same publisher.
// Run with -benchtime=3x (medians of the iterations).
func BenchmarkRelayKeys(b *testing.B) {
	n := benchSize(20000)
	amqpURL := testenv.AMQPURL(b)
	suffix := testenv.Suffix()
	topic := "bench_keys_" + suffix
	pool, ob, table := newOutbox(b, outbox.WithTopicFunc(func(string) string { return topic }))

	// RabbitMQ: a publisher, and a durable queue bound to the topic's
	// exchange so every message is routed and stored; both removed at the end.
	cfg := amqp.Config{URL: amqpURL, Group: "bench"}
	rmq, err := amqp.NewPublisher(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = rmq.Close() }()
	sub, err := amqp.NewSubscriber(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := sub.SubscribeInitialize(topic); err != nil {
		b.Fatal(err)
	}
	_ = sub.Close()
	defer func() {
		conn, err := amqp091.Dial(amqpURL)
		if err != nil {
			b.Log(err)
			return
		}
		defer conn.Close()
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(amqp.QueueName(topic, cfg.Group), false, false, false)
			_ = ch.ExchangeDelete(topic, false, false)
		}
	}()

	keyCases := []int{0, 50, 1000}
	pubNames := []string{"gochannel", "counting", "rabbitmq"}
	rates := map[string][]float64{}
	b.ResetTimer()
	b.StopTimer()
	for range b.N {
		for _, pubName := range pubNames {
			for _, keys := range keyCases {
				fillBench(b, pool, ob, n, keys)
				var took time.Duration
				switch pubName {
				case "gochannel":
					gc := gochannel.NewGoChannel(benchGoChannelConfig(), watermill.NopLogger{})
					_, count := consume(b, gc, topic, int64(n))
					b.StartTimer()
					took = drainInto(b, pool, table, gc, n, count.Load)
					b.StopTimer()
					_ = gc.Close()
				case "counting":
					cnt := &counting{}
					b.StartTimer()
					took = drainInto(b, pool, table, cnt, n, cnt.n.Load)
					b.StopTimer()
				case "rabbitmq":
					p := &published{Publisher: rmq}
					b.StartTimer()
					took = drainInto(b, pool, table, p, n, p.n.Load)
					b.StopTimer()
				}
				if st := pending(b, ob); st.Pending != 0 {
					b.Fatalf("%s, %d keys: %d rows left after the drain", pubName, keys, st.Pending)
				}
				name := fmt.Sprintf("%s_keys_%d", pubName, keys)
				rates[name] = append(rates[name], float64(n)/took.Seconds())
			}
		}
	}
	for _, pubName := range pubNames {
		none := median(rates[pubName+"_keys_0"])
		for _, keys := range keyCases {
			r := median(rates[fmt.Sprintf("%s_keys_%d", pubName, keys)])
			b.ReportMetric(r, fmt.Sprintf("%s_keys_%d_rows/s", pubName, keys))
			if keys > 0 {
				b.ReportMetric(r/none, fmt.Sprintf("%s_keys_%d/keys_0", pubName, keys))
			}
		}
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkKeyedBacklogPollInterval times the relay draining a backlog of
// 6000 rows over 50 ordering keys into a publisher that only counts, with
// a 100 ms and a 5 s poll interval, in one run: the drain must not depend
// on the poll interval (the poll only covers lost notifications and
// retries). Before the fix the 5 s case took about one poll interval per
// batch. Run with -benchtime=5x (medians).
func BenchmarkKeyedBacklogPollInterval(b *testing.B) {
	const n, keys = 6000, 50
	pool, ob, table := newOutbox(b)
	polls := []time.Duration{100 * time.Millisecond, 5 * time.Second}
	took := map[time.Duration][]float64{}
	b.ResetTimer()
	b.StopTimer()
	for range b.N {
		for _, poll := range polls {
			fillBench(b, pool, ob, n, keys)
			cnt := &counting{}
			b.StartTimer()
			d := drainInto(b, pool, table, cnt, n, cnt.n.Load, outbox.WithPollInterval(poll))
			b.StopTimer()
			took[poll] = append(took[poll], float64(d.Microseconds())/1000)
		}
	}
	fast, slow := median(took[polls[0]]), median(took[polls[1]])
	b.ReportMetric(fast, "drain_ms_poll_100ms")
	b.ReportMetric(slow, "drain_ms_poll_5s")
	b.ReportMetric(slow/fast, "poll_5s/poll_100ms")
	b.ReportMetric(0, "ns/op")
}
