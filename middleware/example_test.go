package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
)

// Retry calls the handler again after a transient failure; the handler
// reads its attempt number from its context.
func ExampleRetry() {
	retry, err := middleware.Retry(middleware.RetryPolicy{
		MaxAttempts:     4,
		InitialInterval: 10 * time.Millisecond,
		MaxInterval:     time.Second,
	})
	if err != nil {
		panic(err)
	}
	handler := middleware.Chain(func(msg *message.Message) ([]*message.Message, error) {
		attempt := middleware.Attempt(msg.Context())
		fmt.Println("attempt", attempt)
		if attempt < 3 {
			return nil, errors.New("connection reset")
		}
		return nil, nil
	}, retry)
	_, err = handler(message.NewMessage("m-1", nil))
	fmt.Println("error:", err)
	// Output:
	// attempt 1
	// attempt 2
	// attempt 3
	// error: <nil>
}

// DeadLetter moves a message that failed for good to "<topic>.dlq" with its
// fault details, and acknowledges it so the consumer goes on.
func ExampleDeadLetter() {
	pubSub := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	defer pubSub.Close()
	dlq, _ := pubSub.Subscribe(context.Background(), "payments.dlq")

	deadLetter, err := middleware.DeadLetter(pubSub, middleware.DeadLetterOptions{})
	if err != nil {
		panic(err)
	}
	r, _ := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	r.AddMiddleware(deadLetter)
	r.AddConsumerHandler("charge", "payments", pubSub, func(msg *message.Message) error {
		return hexeract.Permanent(errors.New("card declined"))
	})
	go func() { _ = r.Run(context.Background()) }()
	defer r.Close()
	<-r.Running()

	msg := message.NewMessage("pay-1", []byte(`{"amount":42}`))
	msg.Metadata.Set("authorization", "Bearer secret") // never copied into dead letters
	_ = pubSub.Publish("payments", msg)

	dead := <-dlq
	dead.Ack()
	fault, _ := middleware.FaultOf(dead.Metadata)
	fmt.Println(dead.UUID, string(dead.Payload))
	fmt.Println("error:", fault.Error)
	fmt.Println("handler:", fault.Handler, "topic:", fault.Topic, "attempts:", fault.Attempts, "permanent:", fault.Permanent)
	fmt.Println("watermill reason_poisoned:", dead.Metadata.Get("reason_poisoned"))
	fmt.Printf("authorization copied: %q\n", dead.Metadata.Get("authorization"))
	// Output:
	// pay-1 {"amount":42}
	// error: card declined
	// handler: charge topic: payments attempts: 1 permanent: true
	// watermill reason_poisoned: card declined
	// authorization copied: ""
}

// hexeract.New installs the default chain: a message that cannot be decoded
// is dead-lettered at once and the handler keeps consuming.
func ExampleDefault() {
	pubSub := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 16}, watermill.NopLogger{})
	defer pubSub.Close()
	dlq, _ := pubSub.Subscribe(context.Background(), "users.registered.dlq")

	app, err := hexeract.New(hexeract.WithPubSub(pubSub, pubSub),
		hexeract.WithLogger(discardLogger()),
		hexeract.WithDefaultMiddleware(func(c *middleware.DefaultConfig) {
			c.Retry.MaxAttempts = 3
			c.Timeout = 5 * time.Second
		}))
	if err != nil {
		panic(err)
	}
	handled := make(chan string)
	_ = hexeract.HandleFunc(app, func(ctx context.Context, ev UserRegistered) error {
		handled <- ev.UserID
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = app.Run(ctx) }()
	<-app.Running()

	garbage := message.NewMessage("garbage-1", []byte("{not json"))
	garbage.Metadata.Set(router.KeyType, "users.registered")
	_ = pubSub.Publish("users.registered", garbage)
	dead := <-dlq
	dead.Ack()
	_ = app.Publish(ctx, UserRegistered{UserID: "ada"})

	fmt.Println("handled:", <-handled)
	fmt.Println("dead letter:", dead.UUID, dead.Metadata.Get(router.KeyFaultType), "attempts", dead.Metadata.Get(router.KeyFaultAttempts))
	// Output:
	// handled: ada
	// dead letter: garbage-1 *router.DecodeError attempts 1
}

// TracingPublisher and Tracing carry one trace across the bus: the
// consumer span is a child of the producer span.
func ExampleTracingPublisher() {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	opts := middleware.TracingOptions{TracerProvider: tp, System: "rabbitmq"}

	pubSub := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	defer pubSub.Close()
	publisher := middleware.TracingPublisher(pubSub, opts)

	done := make(chan struct{})
	r, _ := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	r.AddMiddleware(middleware.Tracing(opts))
	r.AddConsumerHandler("ship", "orders", pubSub, func(msg *message.Message) error {
		close(done)
		return nil
	})
	go func() { _ = r.Run(context.Background()) }()
	defer r.Close()
	<-r.Running()

	ctx, root := tp.Tracer("example").Start(context.Background(), "checkout")
	msg := message.NewMessage("order-1", nil)
	msg.SetContext(ctx)
	_ = publisher.Publish("orders", msg)
	root.End()
	<-done
	_ = r.Close()

	byID := map[string]string{}
	for _, s := range spans.Ended() {
		byID[s.SpanContext().SpanID().String()] = s.Name()
	}
	for _, s := range spans.Ended() {
		if s.Parent().IsValid() {
			fmt.Printf("%s (%s) is a child of %s\n", s.Name(), s.SpanKind(), byID[s.Parent().SpanID().String()])
		}
	}
	// Unordered output:
	// send orders (producer) is a child of checkout
	// process orders (consumer) is a child of send orders
}

// Revive turns a dead letter back into the original message, to publish it
// on its original topic again (what "hexeract dlq move" does).
func ExampleRevive() {
	dead := message.NewMessage("pay-1", []byte(`{"amount":42}`))
	dead.Metadata.Set(router.KeyType, "payments.requested")
	dead.Metadata.Set(router.KeyFaultTopic, "payments")
	dead.Metadata.Set(router.KeyFaultError, "card declined")
	dead.Metadata.Set(router.KeyPoisonReason, "card declined")

	msg, topic, err := middleware.Revive(dead, "")
	fmt.Println(topic, msg.UUID, msg.Metadata, err)
	// Output:
	// payments pay-1 map[ce_type:payments.requested] <nil>
}

// Metrics records the messaging semantic-convention metrics (and
// Hexeract's failure counters) for every message a handler consumes.
func ExampleMetrics() {
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	metrics, err := middleware.Metrics(middleware.MetricsOptions{MeterProvider: provider, System: "rabbitmq"})
	if err != nil {
		panic(err)
	}
	pubSub := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	defer pubSub.Close()
	done := make(chan struct{}, 2)
	r, _ := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	r.AddMiddleware(metrics)
	r.AddConsumerHandler("ship", "orders", pubSub, func(msg *message.Message) error {
		done <- struct{}{}
		return nil
	})
	go func() { _ = r.Run(context.Background()) }()
	<-r.Running()
	_ = pubSub.Publish("orders", message.NewMessage("o-1", nil), message.NewMessage("o-2", nil))
	<-done
	<-done
	_ = r.Close() // waits for the handlers, so both messages are recorded

	var rm metricdata.ResourceMetrics
	_ = reader.Collect(context.Background(), &rm)
	for _, m := range rm.ScopeMetrics[0].Metrics {
		switch data := m.Data.(type) {
		case metricdata.Sum[int64]:
			dp := data.DataPoints[0]
			dest, _ := dp.Attributes.Value("messaging.destination.name")
			fmt.Println(m.Name, dp.Value, dest.AsString())
		case metricdata.Histogram[float64]:
			fmt.Println(m.Name, data.DataPoints[0].Count, m.Unit)
		}
	}
	// Unordered output:
	// messaging.client.consumed.messages 2 orders
	// messaging.process.duration 2 s
}
