package scheduler_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/internal/testenv"
)

// BenchmarkDueThroughputWatermillDelayedSQL is the peer of
// BenchmarkDueThroughput: Watermill's delayed PostgreSQL Pub/Sub
// (watermill-sql's NewDelayedPostgreSQLPublisher/Subscriber, delay metadata
// from components/delay). 10,000 messages already due are published, then
// the timer runs from Subscribe until all 10,000 were received and acked
// (DeleteOnAck, 10 ms poll interval, its default batch of 100).
func BenchmarkDueThroughputWatermillDelayedSQL(b *testing.B) {
	const n = 10000
	pool := testenv.Postgres(b)
	ctx := context.Background()
	db := wmsql.BeginnerFromPgx(pool)
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		topic := "sched_peer_" + testenv.Suffix()
		b.Cleanup(func() { _, _ = pool.Exec(context.Background(), `DROP TABLE IF EXISTS "watermill_`+topic+`"`) })
		pub, err := wmsql.NewDelayedPostgreSQLPublisher(db, wmsql.DelayedPostgreSQLPublisherConfig{})
		if err != nil {
			b.Fatal(err)
		}
		due := delay.Until(time.Now().Add(-2 * time.Second))
		msgs := make([]*message.Message, n)
		for k := range msgs {
			msgs[k] = message.NewMessage(watermill.NewUUID(), []byte(`{"n":`+strconv.Itoa(k)+`}`))
			delay.Message(msgs[k], due)
		}
		for k := 0; k < n; k += 500 {
			if err := pub.Publish(topic, msgs[k:k+500]...); err != nil {
				b.Fatal(err)
			}
		}
		sub, err := wmsql.NewDelayedPostgreSQLSubscriber(db, wmsql.DelayedPostgreSQLSubscriberConfig{
			DeleteOnAck: true,
			OverrideSubscriberConfig: func(c *wmsql.SubscriberConfig) error {
				c.PollInterval = 10 * time.Millisecond
				return nil
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		subCtx, cancel := context.WithCancel(ctx)
		b.StartTimer()
		start := time.Now()
		ch, err := sub.Subscribe(subCtx, topic)
		if err != nil {
			b.Fatal(err)
		}
		for got := 0; got < n; got++ {
			select {
			case m := <-ch:
				m.Ack()
			case <-time.After(60 * time.Second):
				b.Fatalf("peer delivered %d of %d in 60s", got, n)
			}
		}
		total += time.Since(start)
		b.StopTimer()
		cancel()
		_ = sub.Close()
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "msgs/s")
	b.ReportMetric(0, "ns/op")
}
