package hexeract_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/hexeract/hexeract"
	natsadapter "github.com/hexeract/hexeract/adapters/nats"
	"github.com/hexeract/hexeract/internal/testenv"
)

type Queued struct {
	N int `json:"n"`
}

func (Queued) MessageType() string { return "shutdown.queued" }

// TestNATSShutdownGivesBackUnhandled: 100 messages queued on NATS, an App
// stops after handling about 30 of them; the messages it had received but
// not handled are naked on shutdown, so the next App (same group) gets them
// within a second of starting instead of after AckWait (30 s). Duplicates
// are counted and bounded by what was in flight (one handler at a time).
func TestNATSShutdownGivesBackUnhandled(t *testing.T) {
	url := testenv.NATSURL(t)
	suffix := testenv.Suffix()
	cfg := natsadapter.Config{URL: url, Group: "shutdown" + suffix, AckWait: 30 * time.Second}
	topic := "hexeract.shutdown." + suffix
	t.Cleanup(func() { deleteStreams(t, url, natsadapter.StreamName(topic)) })

	var mu sync.Mutex
	handled := map[int]int{}
	var firstAfterRestart time.Time
	restarted := false
	total := func() (distinct, all int) {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range handled {
			distinct++
			all += n
		}
		return
	}
	newApp := func() (*hexeract.App, func()) {
		pub, sub, err := natsadapter.New(cfg, watermill.NopLogger{})
		if err != nil {
			t.Fatal(err)
		}
		app, err := hexeract.New(hexeract.WithPublisher(pub), hexeract.WithSubscriber(sub))
		if err != nil {
			t.Fatal(err)
		}
		err = hexeract.HandleFunc(app, func(_ context.Context, q Queued) error {
			time.Sleep(10 * time.Millisecond)
			mu.Lock()
			handled[q.N]++
			if restarted && firstAfterRestart.IsZero() {
				firstAfterRestart = time.Now()
			}
			mu.Unlock()
			return nil
		}, hexeract.WithTopic(topic))
		if err != nil {
			t.Fatal(err)
		}
		return app, func() { _ = app.Close(); _ = sub.Close(); _ = pub.Close() }
	}

	app1, close1 := newApp()
	// Queue the 100 messages on the topic before any App runs.
	pub, _, err := natsadapter.New(cfg, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		m, err := app1.NewMessage(context.Background(), Queued{N: i})
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(topic, m); err != nil {
			t.Fatal(err)
		}
	}
	_ = pub.Close()

	stop1 := testenv.StartApp(t, app1)
	testenv.WaitFor(t, 30*time.Second, "30 messages handled", func() bool { d, _ := total(); return d >= 30 })
	stop1()
	close1()
	before, _ := total()

	app2, close2 := newApp()
	defer close2()
	mu.Lock()
	restarted = true
	mu.Unlock()
	start := time.Now()
	stop2 := testenv.StartApp(t, app2)
	defer stop2()
	testenv.WaitFor(t, 60*time.Second, "all 100 messages handled", func() bool { d, _ := total(); return d == 100 })
	distinct, all := total()
	mu.Lock()
	delay := firstAfterRestart.Sub(start)
	var dups []string
	for n, c := range handled {
		if c > 1 {
			dups = append(dups, strconv.Itoa(n)+"x"+strconv.Itoa(c))
		}
	}
	mu.Unlock()
	t.Logf("handled before shutdown: %d; after restart the first message came %v after Run; %d handled %d times in all; duplicates: %v",
		before, delay, distinct, all, dups)
	if delay > time.Second {
		t.Errorf("the unhandled messages came back %v after the restart, want within 1s (they were not given back on shutdown)", delay)
	}
	// One handler runs one message at a time: at most one was in flight.
	if all-distinct > 1 {
		t.Errorf("%d duplicates (%v), want at most 1 (the message in flight at shutdown)", all-distinct, dups)
	}
}
