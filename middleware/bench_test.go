package middleware_test

import (
	"context"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	wmmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
)

// The default-chain benchmarks run three variants in one run:
//
//	none         no middleware at all (the baseline)
//	default      middleware.Default with the global OpenTelemetry providers,
//	             which are no-ops until an SDK is installed (what an App
//	             gets out of the box)
//	default-sdk  middleware.Default with the OpenTelemetry SDK: every span
//	             sampled and ended (into a discarding processor) and metrics
//	             aggregated by a manual reader
//
// Each op is one message. The Direct benchmarks call the wrapped handler
// function on a message whose context came from a real router (handler
// name, topic), so only the middleware is measured; the Router benchmarks
// push the messages through GoChannel and Watermill's router.

// processCPU returns the CPU time (user + system) the whole process used so
// far. Benchmarks report it per op as cpu-ns/op beside the wall-clock
// ns/op: on a busy machine the wall clock also counts the time the
// benchmark waited for a core, the CPU time does not (it does count the
// garbage collector's work on other threads).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuTimer measures process CPU time from Start to Report.
type cpuTimer struct{ start time.Duration }

func (c *cpuTimer) Start() { c.start = processCPU() }

func (c *cpuTimer) Report(b *testing.B) {
	b.StopTimer()
	b.ReportMetric(float64(processCPU()-c.start)/float64(b.N), "cpu-ns/op")
}

type discardProcessor struct{}

func (discardProcessor) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (discardProcessor) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (discardProcessor) Shutdown(context.Context) error                  { return nil }
func (discardProcessor) ForceFlush(context.Context) error                { return nil }

func benchChains(b *testing.B, pub message.Publisher) map[string][]message.HandlerMiddleware {
	b.Helper()
	noop, err := middleware.Default(middleware.DefaultConfig{Publisher: pub})
	if err != nil {
		b.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(discardProcessor{}))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()); _ = mp.Shutdown(context.Background()) })
	sdk, err := middleware.Default(middleware.DefaultConfig{
		Publisher: pub,
		Tracing:   middleware.TracingOptions{TracerProvider: tp},
		Metrics:   middleware.MetricsOptions{MeterProvider: mp},
	})
	if err != nil {
		b.Fatal(err)
	}
	noTimeout, err := middleware.Default(middleware.DefaultConfig{Publisher: pub, Timeout: -1})
	if err != nil {
		b.Fatal(err)
	}
	return map[string][]message.HandlerMiddleware{
		"none": nil, "default": noop, "default-sdk": sdk,
		"default-no-timeout": noTimeout,
		"timeout-only":       {wmmiddleware.Timeout(middleware.DefaultTimeout)},
	}
}

// variants run by the Direct and Router benchmarks. default-no-timeout is
// the default chain with DefaultConfig.Timeout = -1 and timeout-only is
// Watermill's Timeout alone: together they show what the per-attempt
// deadline costs (context.WithTimeout on each message's own context).
var variants = []string{"none", "default", "default-sdk", "default-no-timeout", "timeout-only"}

func benchMessage(b *testing.B) *message.Message {
	msg, err := router.NewMessage(context.Background(), UserRegistered{UserID: "u-1"}, router.EncodeOptions{})
	if err != nil {
		b.Fatal(err)
	}
	// A producer's trace context, as a TracingPublisher upstream writes it.
	msg.Metadata.Set(router.KeyTraceParent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	return msg
}

// routerContext returns the context a Watermill router gives a message
// (GoChannel's cancelable context plus handler name, subscriber and topic),
// captured from a real router whose handler stays in flight until the
// benchmark ends, so the context stays live.
func routerContext(b *testing.B) context.Context {
	ps := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	got := make(chan context.Context, 1)
	release := make(chan struct{})
	r, _ := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	r.AddConsumerHandler("users.registered", "users.registered", ps, func(msg *message.Message) error {
		got <- msg.Context()
		<-release
		return nil
	})
	go func() { _ = r.Run(context.Background()) }()
	<-r.Running()
	_ = ps.Publish("users.registered", message.NewMessage("x", nil))
	ctx := <-got
	b.Cleanup(func() {
		close(release)
		_ = r.Close()
		_ = ps.Close()
	})
	return ctx
}

// BenchmarkDefaultChainDirect measures the middleware alone: one op is one
// call of the wrapped handler.
func BenchmarkDefaultChainDirect(b *testing.B) {
	ps := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	defer ps.Close()
	chains := benchChains(b, ps)
	base := routerContext(b)
	for _, name := range variants {
		b.Run(name, func(b *testing.B) {
			h := middleware.Chain(func(msg *message.Message) ([]*message.Message, error) { return nil, nil }, chains[name]...)
			msg := benchMessage(b)
			var cpu cpuTimer
			b.ReportAllocs()
			b.ResetTimer()
			cpu.Start()
			for range b.N {
				msg.SetContext(base)
				if _, err := h(msg); err != nil {
					b.Fatal(err)
				}
			}
			cpu.Report(b)
		})
	}
}

// BenchmarkDefaultChainRouter measures end to end through GoChannel and
// Watermill's router: one op is one message published and acked.
func BenchmarkDefaultChainRouter(b *testing.B) {
	for _, name := range variants {
		b.Run(name, func(b *testing.B) {
			ps := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 1024}, watermill.NopLogger{})
			defer ps.Close()
			chains := benchChains(b, ps)
			r, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
			if err != nil {
				b.Fatal(err)
			}
			r.AddMiddleware(chains[name]...)
			var handled atomic.Int64
			done := make(chan struct{})
			target := int64(b.N)
			r.AddConsumerHandler("users.registered", "users.registered", ps, func(msg *message.Message) error {
				if handled.Add(1) == target {
					close(done)
				}
				return nil
			})
			go func() { _ = r.Run(context.Background()) }()
			defer r.Close()
			<-r.Running()
			msgs := make([]*message.Message, b.N)
			for i := range msgs {
				msgs[i] = benchMessage(b)
			}
			var cpu cpuTimer
			b.ReportAllocs()
			b.ResetTimer()
			cpu.Start()
			for _, m := range msgs {
				if err := ps.Publish("users.registered", m); err != nil {
					b.Fatal(err)
				}
			}
			<-done
			cpu.Report(b)
		})
	}
}

// BenchmarkDefaultChainStep measures each step of the default chain alone
// (global no-op OpenTelemetry providers; the -sdk steps with the SDK), wrapped around a handler that
// returns nil, to show where the chain's cost goes.
func BenchmarkDefaultChainStep(b *testing.B) {
	ps := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	defer ps.Close()
	chain, err := middleware.Default(middleware.DefaultConfig{Publisher: ps})
	if err != nil {
		b.Fatal(err)
	}
	names := []string{"correlation", "tracing", "metrics", "deadletter", "retry", "timeout", "recoverer"}
	if len(chain) != len(names) {
		b.Fatalf("default chain has %d steps, want %d", len(chain), len(names))
	}
	steps := map[string]message.HandlerMiddleware{}
	for i, name := range names {
		steps[name] = chain[i]
	}
	sdk := benchChains(b, ps)["default-sdk"]
	steps["tracing-sdk"], steps["metrics-sdk"] = sdk[1], sdk[2]
	names = append(names, "tracing-sdk", "metrics-sdk")
	base := routerContext(b)
	for _, name := range names {
		b.Run(name, func(b *testing.B) {
			h := middleware.Chain(func(msg *message.Message) ([]*message.Message, error) { return nil, nil }, steps[name])
			msg := benchMessage(b)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				msg.SetContext(base)
				if _, err := h(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
