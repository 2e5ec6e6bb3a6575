package adapters_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/router"
)

type queued struct {
	N int `json:"n"`
}

func (queued) MessageType() string { return "shutdown.queued" }

// shutdownRedelivery queues 100 messages, runs an App that stops after
// handling about 30 of them (one handler, one message at a time), then
// starts a second App of the same group and measures how long after its
// start the first message arrives and how many messages were handled
// twice. The first must come within bound (what the transport does with
// messages fetched but not handled, see docs/transports.md), and the
// duplicates must not exceed maxDup.
func shutdownRedelivery(t *testing.T, rawURL string, bound time.Duration, maxDup int) {
	t.Helper()
	ctx := context.Background()
	suffix := testenv.Suffix()
	group := "shutdown-" + suffix
	topic := "shutdown_" + strings.ToLower(suffix)

	var mu sync.Mutex
	handled := map[int]int{}
	var restartedAt, firstAfter time.Time
	distinct := func() int { mu.Lock(); defer mu.Unlock(); return len(handled) }
	newApp := func() (*hexeract.App, *adapters.Transport) {
		tr, err := adapters.Open(ctx, rawURL, adapters.WithGroup(group))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		app, err := hexeract.New(hexeract.WithPubSub(tr.Publisher, tr.Subscriber))
		if err != nil {
			t.Fatal(err)
		}
		err = hexeract.HandleFunc(app, func(_ context.Context, q queued) error {
			time.Sleep(10 * time.Millisecond)
			mu.Lock()
			handled[q.N]++
			if !restartedAt.IsZero() && firstAfter.IsZero() {
				firstAfter = time.Now()
			}
			mu.Unlock()
			return nil
		}, hexeract.WithTopic(topic))
		if err != nil {
			t.Fatal(err)
		}
		return app, tr
	}

	app1, tr1 := newApp()
	if si, ok := tr1.Subscriber.(message.SubscribeInitializer); ok {
		if err := si.SubscribeInitialize(topic); err != nil { // keep the messages for the group
			t.Fatal(err)
		}
	}
	for i := range 100 {
		m, err := router.NewMessage(ctx, queued{N: i}, router.EncodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := tr1.Publisher.Publish(topic, m); err != nil {
			t.Fatal(err)
		}
	}
	stop1 := testenv.StartApp(t, app1)
	testenv.WaitFor(t, time.Minute, "30 messages handled", func() bool { return distinct() >= 30 })
	stop1()
	_ = app1.Close()
	_ = tr1.Close()
	before := distinct()

	app2, tr2 := newApp()
	defer func() { _ = tr2.Close() }()
	defer func() { _ = app2.Close() }()
	mu.Lock()
	restartedAt = time.Now()
	mu.Unlock()
	stop2 := testenv.StartApp(t, app2)
	defer stop2()
	testenv.WaitFor(t, 2*time.Minute, "all 100 messages handled", func() bool { return distinct() == 100 })
	time.Sleep(200 * time.Millisecond) // late duplicates would show by now
	mu.Lock()
	defer mu.Unlock()
	delay := firstAfter.Sub(restartedAt)
	var dups []string
	total := 0
	for n, c := range handled {
		total += c
		if c > 1 {
			dups = append(dups, fmt.Sprintf("%dx%d", n, c))
		}
	}
	t.Logf("%s: %d handled before the shutdown; the first message came %v after the restart; %d duplicates %v",
		tr2.Scheme, before, delay.Round(time.Millisecond), total-100, dups)
	if delay > bound {
		t.Errorf("the unhandled messages came back %v after the restart, want within %v", delay, bound)
	}
	if total-100 > maxDup {
		t.Errorf("%d duplicates, want at most %d", total-100, maxDup)
	}
}

func TestShutdownRedeliveryNATS(t *testing.T) {
	shutdownRedelivery(t, testenv.NATSURL(t), time.Second, 1)
}

func TestShutdownRedeliveryAMQP(t *testing.T) {
	shutdownRedelivery(t, testenv.AMQPURL(t), time.Second, 1)
}

func TestShutdownRedeliveryPostgres(t *testing.T) {
	// watermill-sql acknowledges a batch in the transaction that read it:
	// a shutdown mid-batch rolls back the acks of the batch's handled
	// messages, so up to batch_size of them are handled again.
	url := testenv.PostgresURL(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	shutdownRedelivery(t, url+sep+"batch_size=10", time.Second, 10)
}

func TestShutdownRedeliveryRedis(t *testing.T) {
	// Redis leaves what the consumer read pending until another consumer
	// claims it after max_idle (checked every claim_interval).
	shutdownRedelivery(t, testenv.RedisURL(t)+"?max_idle=2s&claim_interval=500ms", 4*time.Second, 1)
}

func TestShutdownRedeliveryKafka(t *testing.T) {
	brokers := testenv.Kafka(t)
	shutdownRedelivery(t, "kafka://"+strings.Join(brokers, ",")+"/", 10*time.Second, 1)
}
