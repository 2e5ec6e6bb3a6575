package reqreply_test

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract"
	adamqp "github.com/hexeract/hexeract/adapters/amqp"
	adnats "github.com/hexeract/hexeract/adapters/nats"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/reqreply"
)

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	var ms runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// settleGoroutines waits until at most limit goroutines run, and returns
// the count it saw last.
func settleGoroutines(limit int) int {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(10 * time.Second); n > limit && time.Now().Before(deadline); n = runtime.NumGoroutine() {
		time.Sleep(20 * time.Millisecond)
	}
	return n
}

// checkNothingLeft runs build n times and checks that afterwards no
// goroutine is left over and the heap after all n is not above the heap
// after the first tenth by more than slack (the pattern of the root
// package's TestThousandAppsLeaveNothingBehind).
func checkNothingLeft(t *testing.T, n int, slack uint64, build func(t testing.TB)) {
	build(t) // warm up: lazily started process-wide goroutines and caches
	baseG := settleGoroutines(0)
	var heapFirst uint64
	for i := range n {
		build(t)
		if i+1 == n/10 {
			settleGoroutines(baseG)
			heapFirst = heapInUse()
		}
	}
	const tolerance = 5
	if g := settleGoroutines(baseG + tolerance); g > baseG+tolerance {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after %d Apps were run and closed, %d before (tolerance %d):\n%s", g, n, baseG, tolerance, buf[:runtime.Stack(buf, true)])
	}
	heapLast := heapInUse()
	t.Logf("%d Apps: goroutines %d -> %d; heap after %d Apps %d KiB, after %d Apps %d KiB",
		n, baseG, runtime.NumGoroutine(), n/10, heapFirst>>10, n, heapLast>>10)
	if heapLast > heapFirst+slack {
		t.Fatalf("heap grew from %d KiB after %d Apps to %d KiB after %d Apps (allowed: %d KiB)",
			heapFirst>>10, n/10, heapLast>>10, n, slack>>10)
	}
}

// requesterCycles runs a long-lived responder App on pub/sub, then n
// requester Apps on reqPub (shared, left open: an App does not close what
// it was given), each created, run, asked one request and closed. It
// returns the reply topics the requesters used.
func requesterCycles(t *testing.T, n int, resp *hexeract.App, reqPub message.Publisher, topics hexeract.Option) []string {
	if err := reqreply.Handle(resp, doubleHandler("a", nil)); err != nil {
		t.Fatal(err)
	}
	testenv.StartApp(t, resp)
	var replyTopics []string
	checkNothingLeft(t, n, 4<<20, func(t testing.TB) {
		app, err := hexeract.New(hexeract.WithPublisher(reqPub), topics, hexeract.WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- app.Run(ctx) }()
		select {
		case <-app.Running():
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		}
		got, err := reqreply.Request[Double, Doubled](ctx, app, Double{N: 3}, reqreply.Timeout(20*time.Second))
		if err != nil || got.Result != 6 {
			t.Fatalf("request: %+v, %v", got, err)
		}
		c, err := reqreply.ClientFor(app)
		if err != nil {
			t.Fatal(err)
		}
		if c.ReplyVia() == "" {
			t.Fatal("the client did not derive its reply transport")
		}
		replyTopics = append(replyTopics, c.ReplyTopic())
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if err := app.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	})
	return replyTopics
}

// 1,000 requester Apps on RabbitMQ, each with its derived reply queue,
// leave no goroutine, no heap and no reply queue behind.
func TestThousandRequestersOnRabbitMQLeaveNothingBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 1,000 Apps; -short skips it")
	}
	tr := amqpDerivedTransport(t)
	resp, _ := tr.newResponder(t)
	pub, err := adamqp.NewPublisher(adamqp.Config{URL: testenv.AMQPURL(t), Group: "responders"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeLater(t, pub)
	replyTopics := requesterCycles(t, 1000, resp, pub, hexeract.WithTopicNaming(resp.Topics()))
	var left []string
	testenv.WaitFor(t, 10*time.Second, "every reply queue to be removed", func() bool {
		left = left[:0]
		for _, q := range amqpList[amqpQueue](t, "queues") {
			if slices.Contains(replyTopics, q.Name) {
				left = append(left, q.Name)
			}
		}
		return len(left) == 0
	})
	if len(replyTopics) < 1000 {
		t.Fatalf("%d reply topics recorded", len(replyTopics))
	}
}

// The same on NATS: 1,000 requester Apps, each with a core reply
// subscription on the shared publisher's connection.
func TestThousandRequestersOnNATSLeaveNothingBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 1,000 Apps; -short skips it")
	}
	tr := natsDerivedTransport(t)
	resp, _ := tr.newResponder(t)
	pub, err := adnats.NewPublisher(adnats.Config{URL: testenv.NATSURL(t), Group: "responders"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	closeLater(t, pub)
	requesterCycles(t, 1000, resp, pub, hexeract.WithTopicNaming(resp.Topics()))
}
