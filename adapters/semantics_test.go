package adapters_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters"
	"github.com/hexeract/hexeract/adapters/internal/suite"
	"github.com/hexeract/hexeract/internal/testenv"
)

// oneBus checks the bus's first rule on a transport: two handlers of one
// message type, in each of two replicas of one App (same consumer group,
// each replica on its own connection), n messages. Each handler applies
// every message; a message applied by both replicas for one handler is a
// redelivery, counted and reported, and there must be none beyond maxDup.
func oneBus(t *testing.T, rawURL string, n, maxDup int, wantShared bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	group := "bus-" + testenv.Suffix()
	suffix := testenv.Suffix()
	topic := func(name string) string { return strings.ReplaceAll(name, ".", "_") + "_" + suffix }

	var mu sync.Mutex
	applied := map[string]map[int]map[string]int{} // handler -> seq -> replica -> calls
	var apps []*hexeract.App
	for _, replica := range []string{"r1", "r2"} {
		tr, err := adapters.Open(ctx, rawURL, adapters.WithGroup(group))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { _ = tr.Close() })
		app, err := hexeract.New(hexeract.WithPubSub(tr.Publisher, tr.Subscriber), hexeract.WithTopicFunc(topic))
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range []string{"projection", "saga"} {
			err := hexeract.HandleFunc(app, func(_ context.Context, o orderPlaced) error {
				mu.Lock()
				defer mu.Unlock()
				if applied[h] == nil {
					applied[h] = map[int]map[string]int{}
				}
				if applied[h][o.Seq] == nil {
					applied[h][o.Seq] = map[string]int{}
				}
				applied[h][o.Seq][replica]++
				return nil
			}, hexeract.WithName(h))
			if err != nil {
				t.Fatal(err)
			}
		}
		testenv.StartApp(t, app)
		apps = append(apps, app)
	}
	for i := range n {
		if err := apps[i%2].Publish(ctx, orderPlaced{OrderID: fmt.Sprint("o-", i%16), Seq: i}); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
	}
	testenv.WaitFor(t, 2*time.Minute, fmt.Sprintf("both handlers applied all %d messages", n), func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(applied["projection"]) == n && len(applied["saga"]) == n
	})
	time.Sleep(200 * time.Millisecond) // late duplicates would show by now
	mu.Lock()
	defer mu.Unlock()
	for _, h := range []string{"projection", "saga"} {
		byBoth, extra := 0, 0
		share := map[string]int{}
		for _, by := range applied[h] {
			if len(by) > 1 {
				byBoth++
			}
			for r, calls := range by {
				share[r]++
				extra += calls - 1
			}
		}
		t.Logf("%s: %d messages applied; by replica %v; applied by both replicas: %d; repeated in one replica: %d", h, len(applied[h]), share, byBoth, extra)
		if byBoth+extra > maxDup {
			t.Errorf("%s: %d redeliveries, more than the %d allowed", h, byBoth+extra, maxDup)
		}
		if wantShared && (share["r1"] == 0 || share["r2"] == 0) {
			t.Errorf("%s: the replicas did not share the work: %v", h, share)
		}
	}
}

func TestOneBusAMQP(t *testing.T) {
	suite.BrokerInUse(t)
	oneBus(t, testenv.AMQPURL(t), 1000, 0, true)
}

func TestOneBusNATS(t *testing.T) {
	suite.BrokerInUse(t)
	oneBus(t, testenv.NATSURL(t), 1000, 0, true)
}

func TestOneBusRedis(t *testing.T) { oneBus(t, testenv.RedisURL(t), 1000, 0, true) }

func TestOneBusPostgres(t *testing.T) {
	// The PostgreSQL bus (watermill-sql) lets one consumer of a group hold
	// the group's offset row at a time, so the replicas take turns rather
	// than share every batch; it is enough that neither handler misses one.
	oneBus(t, testenv.PostgresURL(t), 1000, 0, false)
}

func TestOneBusKafka(t *testing.T) {
	brokers := testenv.Kafka(t)
	// A rebalance when the second replica joins may hand a partition over
	// with messages in flight: those few are redelivered, and counted.
	oneBus(t, "kafka://"+strings.Join(brokers, ",")+"/?partitions=4", 1000, 50, false)
}

func TestOneBusSQS(t *testing.T) {
	// SQS has one queue per topic and no consumer groups: the replicas
	// compete on the queue, and the App hands each message to both handlers.
	oneBus(t, testenv.SQSURL(t), 300, 0, false)
}
