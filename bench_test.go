package hexeract_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters/gochannel"
)

// benchEvent is a ~100-byte JSON event.
type benchEvent struct {
	OrderID    string `json:"order_id"`
	CustomerID string `json:"customer_id"`
	Amount     int    `json:"amount"`
	Currency   string `json:"currency"`
	Note       string `json:"note"`
}

func (benchEvent) MessageType() string { return "bench.order_placed" }

var sampleEvent = benchEvent{OrderID: "ord-0000000001", CustomerID: "cus-0000000001", Amount: 4200, Currency: "EUR", Note: "benchmark"}

const benchTopic = "bench.order_placed"

// blockingPubSub is the benchmark transport: Publish returns once the
// handler acknowledged, so the loop measures publish-to-handled end to end.
func blockingPubSub() *gochannel.PubSub {
	return gochannel.New(gochannel.Config{BlockPublishUntilAck: true}, nil)
}

// runRouter starts r and returns a function that stops it.
func runRouter(b *testing.B, r *message.Router) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	<-r.Running()
	return func() { cancel(); <-done }
}

func report(b *testing.B, start time.Time) {
	elapsed := time.Since(start)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

// BenchmarkEndToEnd sends b.N ~100-byte JSON events through GoChannel (publish
// blocks until acked) to one no-op handler, four ways. Run it with
// -benchtime=100000x for the 100k-message workload of the foundation issue.
func BenchmarkEndToEnd(b *testing.B) {
	payload, _ := json.Marshal(sampleEvent)

	b.Run("watermill-raw-ceiling", func(b *testing.B) {
		ps := blockingPubSub()
		r, _ := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
		r.AddConsumerHandler("raw", benchTopic, ps, func(*message.Message) error { return nil })
		defer runRouter(b, r)()
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		for range b.N {
			if err := ps.Publish(benchTopic, message.NewMessage(watermill.NewUUID(), payload)); err != nil {
				b.Fatal(err)
			}
		}
		report(b, start)
	})

	b.Run("watermill-raw-unmarshal-baseline", func(b *testing.B) {
		ps := blockingPubSub()
		r, _ := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
		r.AddConsumerHandler("raw", benchTopic, ps, func(m *message.Message) error {
			var ev benchEvent
			return json.Unmarshal(m.Payload, &ev)
		})
		defer runRouter(b, r)()
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		for range b.N {
			// The publisher encodes, as a typed publisher must.
			p, err := json.Marshal(sampleEvent)
			if err != nil {
				b.Fatal(err)
			}
			if err := ps.Publish(benchTopic, message.NewMessage(watermill.NewUUID(), p)); err != nil {
				b.Fatal(err)
			}
		}
		report(b, start)
	})

	b.Run("watermill-cqrs", func(b *testing.B) {
		ps := blockingPubSub()
		r, _ := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
		marshaler := cqrs.JSONMarshaler{}
		bus, err := cqrs.NewEventBusWithConfig(ps, cqrs.EventBusConfig{
			GeneratePublishTopic: func(p cqrs.GenerateEventPublishTopicParams) (string, error) { return p.EventName, nil },
			Marshaler:            marshaler,
		})
		if err != nil {
			b.Fatal(err)
		}
		proc, err := cqrs.NewEventProcessorWithConfig(r, cqrs.EventProcessorConfig{
			GenerateSubscribeTopic: func(p cqrs.EventProcessorGenerateSubscribeTopicParams) (string, error) { return p.EventName, nil },
			SubscriberConstructor:  func(cqrs.EventProcessorSubscriberConstructorParams) (message.Subscriber, error) { return ps, nil },
			Marshaler:              marshaler,
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := proc.AddHandlers(cqrs.NewEventHandler("noop", func(ctx context.Context, ev *benchEvent) error { return nil })); err != nil {
			b.Fatal(err)
		}
		defer runRouter(b, r)()
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		for range b.N {
			if err := bus.Publish(ctx, &sampleEvent); err != nil {
				b.Fatal(err)
			}
		}
		report(b, start)
	})

	b.Run("hexeract-typed", func(b *testing.B) {
		benchApp(b, hexeract.WithoutDefaultMiddleware())
	})

	// The same with the default middleware chain (correlation, tracing and
	// metrics with no-op OpenTelemetry providers, dead letter, retry,
	// timeout, recover): what an App costs out of the box.
	b.Run("hexeract-typed-default-chain", func(b *testing.B) {
		benchApp(b)
	})
}

func benchApp(b *testing.B, opts ...hexeract.Option) {
	{
		ps := blockingPubSub()
		logger := slog.New(slog.DiscardHandler)
		app, err := hexeract.New(append([]hexeract.Option{hexeract.WithPubSub(ps, ps), hexeract.WithLogger(logger)}, opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		if err := hexeract.HandleFunc(app, func(ctx context.Context, ev benchEvent) error { return nil }); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- app.Run(ctx) }()
		<-app.Running()
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		for range b.N {
			if err := app.Publish(ctx, sampleEvent); err != nil {
				b.Fatal(err)
			}
		}
		report(b, start)
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}

// ExampleHandleFunc shows a typed handler on the in-memory transport.
func ExampleHandleFunc() {
	app, _ := hexeract.New()
	defer app.Close()
	done := make(chan struct{})
	_ = hexeract.HandleFunc(app, func(ctx context.Context, ev benchEvent) error {
		fmt.Println("order", ev.OrderID, "for", ev.Amount, ev.Currency)
		close(done)
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = app.Run(ctx); close(stopped) }()
	<-app.Running()
	_ = app.Publish(ctx, benchEvent{OrderID: "o-1", Amount: 42, Currency: "EUR"})
	<-done
	cancel()
	<-stopped
	// Output: order o-1 for 42 EUR
}
