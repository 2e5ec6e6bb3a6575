package adapters_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters"
	"github.com/hexeract/hexeract/internal/testenv"
)

// benchEvent is about 100 bytes of JSON.
type benchEvent struct {
	OrderID  string `json:"order_id"`
	Customer string `json:"customer"`
	Amount   int64  `json:"amount_cents"`
	Currency string `json:"currency"`
	Seq      int    `json:"seq"`
}

func (benchEvent) MessageType() string { return "bench.order_paid" }

func newBenchEvent(i int) benchEvent {
	return benchEvent{OrderID: fmt.Sprintf("ord-%08d", i), Customer: "cust-4711-acme-gmbh", Amount: 129900, Currency: "EUR", Seq: i}
}

// benchMessages is the number of messages per run: HEXERACT_BENCH_MESSAGES or 20000.
func benchMessages() int {
	if n, err := strconv.Atoi(os.Getenv("HEXERACT_BENCH_MESSAGES")); err == nil && n > 0 {
		return n
	}
	return 20000
}

// runRaw publishes n messages with a plain Watermill publisher (JSON by
// hand) and consumes them with a plain Watermill router handler that decodes
// them, and returns the time from the first publish to the last handled
// message.
//
// With envelope set, each message also carries metadata of the same keys and
// sizes as Hexeract's CloudEvents envelope, to separate the cost of the
// bigger messages from the cost of Hexeract's code.
func runRaw(b *testing.B, rawURL string, n int, envelope bool) result {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	tr, err := adapters.Open(ctx, rawURL, adapters.WithGroup("bench-"+testenv.Suffix()))
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	topic := "bench.raw." + testenv.Suffix()
	r, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	var handled atomic.Int64
	done := make(chan struct{})
	r.AddConsumerHandler("raw", topic, tr.Subscriber, func(msg *message.Message) error {
		var e benchEvent
		if err := json.Unmarshal(msg.Payload, &e); err != nil {
			return err
		}
		if handled.Add(1) == int64(n) {
			close(done)
		}
		return nil
	})
	go func() { _ = r.Run(ctx) }()
	<-r.Running()
	defer r.Close()

	start, cpu0 := time.Now(), cpuTime()
	for i := range n {
		payload, err := json.Marshal(newBenchEvent(i))
		if err != nil {
			b.Fatal(err)
		}
		msg := message.NewMessage(watermill.NewUUID(), payload)
		if envelope {
			msg.Metadata["ce_id"] = msg.UUID
			msg.Metadata["correlation_id"] = msg.UUID
			msg.Metadata["ce_type"] = "bench.order_paid"
			msg.Metadata["ce_source"] = "hexeract"
			msg.Metadata["ce_specversion"] = "1.0"
			msg.Metadata["ce_time"] = "2026-11-26T22:25:12.123694149Z"
			msg.Metadata["content-type"] = "application/json"
		}
		if err := tr.Publisher.Publish(topic, msg); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-ctx.Done():
		b.Fatalf("raw: handled %d of %d", handled.Load(), n)
	}
	return result{wall: time.Since(start), cpu: cpuTime() - cpu0}
}

// runHexeract does the same through Hexeract: App.Publish of typed messages
// (envelope, default publisher decorators) and a typed handler behind the
// App's default middleware chain.
//
// With bare set, the App runs without its default middleware chain
// (hexeract.WithoutDefaultMiddleware), to show what the chain costs.
func runHexeract(b *testing.B, rawURL string, n int, bare bool) result {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	tr, err := adapters.Open(ctx, rawURL, adapters.WithGroup("bench-"+testenv.Suffix()))
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	suffix := testenv.Suffix()
	opts := []hexeract.Option{
		hexeract.WithPubSub(tr.Publisher, tr.Subscriber),
		hexeract.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		hexeract.WithTopicFunc(func(name string) string { return name + "." + suffix }),
	}
	if bare {
		opts = append(opts, hexeract.WithoutDefaultMiddleware())
	}
	app, err := hexeract.New(opts...)
	if err != nil {
		b.Fatal(err)
	}
	var handled atomic.Int64
	done := make(chan struct{})
	if err := hexeract.HandleFunc(app, func(ctx context.Context, e benchEvent) error {
		if handled.Add(1) == int64(n) {
			close(done)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- app.Run(runCtx) }()
	<-app.Running()

	start, cpu0 := time.Now(), cpuTime()
	for i := range n {
		if err := app.Publish(ctx, newBenchEvent(i)); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-ctx.Done():
		b.Fatalf("hexeract: handled %d of %d", handled.Load(), n)
	}
	res := result{wall: time.Since(start), cpu: cpuTime() - cpu0}
	stop()
	<-runErr
	return res
}

func labeled(side string, f func()) {
	pprof.Do(context.Background(), pprof.Labels("side", side), func(context.Context) { f() })
}

// result is one run: wall-clock time from the first publish to the last
// handled message, and the CPU time this process used meanwhile (client
// side: publisher, consumer, middleware; for Kafka also the in-process
// kfake broker).
type result struct{ wall, cpu time.Duration }

// cpuTime returns the user+system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchTransport runs raw Watermill, raw Watermill with envelope-sized
// metadata, Hexeract without its default middleware and Hexeract as New
// configures it, on the same transport in the same run, in alternating
// order for HEXERACT_BENCH_ROUNDS rounds (default 2), keeping the best time
// of each; it reports msgs/s, client CPU per message and Hexeract's overhead
// against raw Watermill in percent.
func benchTransport(b *testing.B, rawURL string) {
	n := benchMessages()
	rounds := 2
	if r, err := strconv.Atoi(os.Getenv("HEXERACT_BENCH_ROUNDS")); err == nil && r > 0 {
		rounds = r
	}
	for range b.N {
		var bestRaw, bestEnv, bestHex, bestBare result
		keep := func(best *result, r result) {
			if best.wall == 0 || r.wall < best.wall {
				*best = r
			}
		}
		for round := range rounds {
			// Alternate the order so neither side always runs on a warmer broker.
			// Each side runs under a profiler label (side=raw|envelope|hexeract)
			// that its goroutines inherit, so a -cpuprofile splits by side.
			raw := func() { labeled("raw", func() { keep(&bestRaw, runRaw(b, rawURL, n, false)) }) }
			env := func() { labeled("envelope", func() { keep(&bestEnv, runRaw(b, rawURL, n, true)) }) }
			hex := func() { labeled("hexeract", func() { keep(&bestHex, runHexeract(b, rawURL, n, false)) }) }
			bare := func() { labeled("bare", func() { keep(&bestBare, runHexeract(b, rawURL, n, true)) }) }
			if round%2 == 0 {
				raw()
				env()
				bare()
				hex()
			} else {
				hex()
				bare()
				env()
				raw()
			}
		}
		envRate := float64(n) / bestEnv.wall.Seconds()
		bareRate := float64(n) / bestBare.wall.Seconds()
		rawRate := float64(n) / bestRaw.wall.Seconds()
		hexRate := float64(n) / bestHex.wall.Seconds()
		rawCPU := float64(bestRaw.cpu.Microseconds()) / float64(n)
		hexCPU := float64(bestHex.cpu.Microseconds()) / float64(n)
		b.ReportMetric(rawRate, "raw_msgs/s")
		b.ReportMetric(hexRate, "hexeract_msgs/s")
		b.ReportMetric((rawRate/hexRate-1)*100, "overhead_%")
		b.ReportMetric(envRate, "raw+envelope_msgs/s")
		b.ReportMetric(bareRate, "hexeract_bare_msgs/s")
		b.ReportMetric(rawCPU, "raw_cpu_us/msg")
		b.ReportMetric(hexCPU, "hexeract_cpu_us/msg")
		us := func(r result) float64 { return float64(r.cpu.Microseconds()) / float64(n) }
		b.Logf("%s: %d messages, best of %d: raw %.0f msgs/s (%.1f µs CPU/msg), raw+envelope %.0f msgs/s (%.1f), hexeract without default middleware %.0f msgs/s (%.1f), hexeract %.0f msgs/s (%.1f); hexeract/raw throughput %.3f",
			strings.SplitN(rawURL, ":", 2)[0], n, rounds, rawRate, rawCPU, envRate, us(bestEnv), bareRate, us(bestBare), hexRate, hexCPU, hexRate/rawRate)
	}
}

func BenchmarkTransportMem(b *testing.B) { benchTransport(b, "mem://") }

func BenchmarkTransportAMQP(b *testing.B) { benchTransport(b, testenv.AMQPURL(b)) }

func BenchmarkTransportNATS(b *testing.B) { benchTransport(b, testenv.NATSURL(b)) }

func BenchmarkTransportKafka(b *testing.B) {
	benchTransport(b, "kafka://"+strings.Join(testenv.Kafka(b), ",")+"/")
}

func BenchmarkTransportPostgres(b *testing.B) { benchTransport(b, testenv.PostgresURL(b)) }

func BenchmarkTransportRedis(b *testing.B) { benchTransport(b, testenv.RedisURL(b)) }
