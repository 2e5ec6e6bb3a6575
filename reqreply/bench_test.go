package reqreply_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/components/requestreply"
	"github.com/ThreeDotsLabs/watermill/message"
	wmgochannel "github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	nc "github.com/nats-io/nats.go"

	"github.com/hexeract/hexeract"
	adamqp "github.com/hexeract/hexeract/adapters/amqp"
	adnats "github.com/hexeract/hexeract/adapters/nats"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/reqreply"
	"github.com/hexeract/hexeract/reqreply/replyamqp"
	"github.com/hexeract/hexeract/reqreply/replynats"
)

// benchTransport gives a benchmark its publisher and subscribers.
type benchTransport interface {
	// requests returns a publisher and a subscriber for request topics
	// (consumed by a group of competing responders).
	requests(b *testing.B) (message.Publisher, message.Subscriber)
	// replies returns a subscriber for reply topics (one consumer each).
	replies(b *testing.B) message.Subscriber
}

type goChannelBench struct{ ps *wmgochannel.GoChannel }

func (g *goChannelBench) requests(b *testing.B) (message.Publisher, message.Subscriber) {
	return g.ps, g.ps
}
func (g *goChannelBench) replies(b *testing.B) message.Subscriber { return g.ps }

// natsBench uses core NATS (no JetStream) for requests and replies, for both
// implementations: request/reply is transient by nature, and Watermill's
// component subscribes once per call, which JetStream would turn into a
// consumer per call.
type natsBench struct{ url string }

func (n *natsBench) requests(b *testing.B) (message.Publisher, message.Subscriber) {
	return n.requestsT(b)
}
func (n *natsBench) replies(b *testing.B) message.Subscriber { return n.repliesT(b) }

func (n *natsBench) requestsT(b testing.TB) (message.Publisher, message.Subscriber) {
	pub, err := wnats.NewPublisher(wnats.PublisherConfig{URL: n.url, JetStream: wnats.JetStreamConfig{Disabled: true}}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	sub, err := wnats.NewSubscriber(wnats.SubscriberConfig{
		URL:              n.url,
		QueueGroupPrefix: "responders",
		SubscribersCount: 16,
		JetStream:        wnats.JetStreamConfig{Disabled: true},
	}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sub.Close(); _ = pub.Close() })
	// Hide SubscribeInitialize: watermill-nats' core (non-JetStream)
	// subscriber panics in it, and Hexeract's dead-letter middleware calls it.
	return pub, plainSubscriber{sub}
}

// plainSubscriber exposes only Subscribe and Close of a subscriber.
type plainSubscriber struct{ message.Subscriber }

func (n *natsBench) repliesT(b testing.TB) message.Subscriber {
	sub, err := wnats.NewSubscriber(wnats.SubscriberConfig{URL: n.url, JetStream: wnats.JetStreamConfig{Disabled: true}}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sub.Close() })
	return sub
}

type benchResult struct{ rps, p50, p99 float64 }

// cpuTime returns the user+system CPU time the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRequestReply compares Hexeract's request/reply with Watermill's
// components/requestreply on the same transport, with 1 and 16 concurrent
// callers. Run it with -benchtime=10000x for 10k requests per row. Each row
// reports requests/s and the p50/p99 latency in microseconds; the ratio of
// the two implementations is logged after each pair.
func BenchmarkRequestReply(b *testing.B) {
	results := map[string]benchResult{}
	for _, tname := range []string{"gochannel", "nats"} {
		for _, callers := range []int{1, 16} {
			for _, impl := range []string{"hexeract", "hexeract-bare", "watermill"} {
				name := fmt.Sprintf("transport=%s/callers=%d/impl=%s", tname, callers, impl)
				b.Run(name, func(b *testing.B) {
					var tr benchTransport
					switch tname {
					case "gochannel":
						ps := wmgochannel.NewGoChannel(wmgochannel.Config{OutputChannelBuffer: 1024}, watermill.NopLogger{})
						b.Cleanup(func() { _ = ps.Close() })
						tr = &goChannelBench{ps: ps}
					case "nats":
						tr = &natsBench{url: testenv.NATSURL(b)}
					}
					var call func(ctx context.Context, n int) (int, error)
					switch impl {
					case "hexeract":
						call = setupHexeract(b, tr, true)
					case "hexeract-bare":
						call = setupHexeract(b, tr, false)
					default:
						call = setupWatermill(b, tr)
					}
					results[name] = runRequests(b, callers, call)
				})
			}
			w := results[fmt.Sprintf("transport=%s/callers=%d/impl=watermill", tname, callers)]
			for _, impl := range []string{"hexeract", "hexeract-bare"} {
				h := results[fmt.Sprintf("transport=%s/callers=%d/impl=%s", tname, callers, impl)]
				if w.rps > 0 && h.rps > 0 {
					b.Logf("%s callers=%d: %s %.0f req/s p50 %.0fµs p99 %.0fµs | watermill %.0f req/s p50 %.0fµs p99 %.0fµs | throughput ratio %.2fx",
						tname, callers, impl, h.rps, h.p50, h.p99, w.rps, w.p50, w.p99, h.rps/w.rps)
				}
			}
		}
		for _, impl := range []string{"hexeract", "hexeract-bare", "watermill"} {
			r1 := results[fmt.Sprintf("transport=%s/callers=1/impl=%s", tname, impl)]
			r16 := results[fmt.Sprintf("transport=%s/callers=16/impl=%s", tname, impl)]
			if r1.rps > 0 && r16.rps > 0 {
				b.Logf("%s: %s 16 callers / 1 caller throughput = %.2fx", tname, impl, r16.rps/r1.rps)
			}
		}
	}
}

// runRequests sends b.N requests from callers goroutines and reports
// requests/s and p50/p99 latency.
func runRequests(b *testing.B, callers int, call func(ctx context.Context, n int) (int, error)) benchResult {
	ctx := context.Background()
	// Warm up: connections, subscriptions, topics. Core NATS drops messages
	// published before the server registered the subscription, so the first
	// requests may be lost: retry them with a short deadline.
	for i, lost := 0, 0; i < 20; {
		wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_, err := call(wctx, i)
		cancel()
		if err != nil {
			if lost++; lost > 20 {
				b.Fatalf("warm-up: %v", err)
			}
			continue
		}
		i++
	}
	lat := make([]time.Duration, b.N)
	var next, failed atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				rctx, cancel := context.WithTimeout(ctx, time.Second)
				t0 := time.Now()
				got, err := call(rctx, i)
				lat[i] = time.Since(t0)
				cancel()
				if err == nil && got != 2*i {
					err = fmt.Errorf("request %d got %d", i, got)
				}
				if err != nil {
					// A lost reply costs the caller its whole timeout: it
					// stays in the latencies and is counted.
					failed.Add(1)
					firstErr.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Logf("%d of %d requests failed; first error: %v", n, b.N, *firstErr.Load())
	}
	b.ReportMetric(float64(failed.Load()), "failed")
	slices.Sort(lat)
	r := benchResult{
		rps: float64(b.N) / elapsed.Seconds(),
		p50: float64(lat[len(lat)*50/100].Microseconds()),
		p99: float64(lat[len(lat)*99/100].Microseconds()),
	}
	b.ReportMetric(r.rps, "req/s")
	b.ReportMetric(r.p50, "p50-µs")
	b.ReportMetric(r.p99, "p99-µs")
	// CPU time of this process (caller, responder and client libraries; not
	// the broker) per request: unlike wall-clock figures, it does not depend
	// on what else the machine runs.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/req")
	return r
}

// setupHexeract builds one App that is both responder and caller. With
// defaults the App has Hexeract's default middleware chain (correlation,
// tracing, metrics, dead letter, retry, timeout, recoverer) and decorated
// publisher; without, a bare router like Watermill's component gets.
func setupHexeract(b *testing.B, tr benchTransport, defaults bool) func(ctx context.Context, n int) (int, error) {
	pub, sub := tr.requests(b)
	opts := []hexeract.Option{hexeract.WithPubSub(pub, sub), hexeract.WithLogger(quietLogger())}
	if !defaults {
		opts = append(opts, hexeract.WithoutDefaultMiddleware())
	}
	app, err := hexeract.New(opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = app.Close() })
	err = reqreply.Handle(app, func(ctx context.Context, q Double) (Doubled, error) {
		return Doubled{N: q.N, Result: 2 * q.N}, nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := reqreply.NewClient(app, reqreply.WithReplySubscriber(tr.replies(b))); err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = app.Run(runCtx) }()
	b.Cleanup(func() { cancel(); <-done })
	<-app.Running()
	return func(ctx context.Context, n int) (int, error) {
		r, err := reqreply.Request[Double, Doubled](ctx, app, Double{N: n}, reqreply.Timeout(10*time.Second))
		return r.Result, err
	}
}

func setupWatermill(b *testing.B, tr benchTransport) func(ctx context.Context, n int) (int, error) {
	pub, sub := tr.requests(b)
	replies := tr.replies(b)
	logger := watermill.NopLogger{}
	r, err := message.NewRouter(message.RouterConfig{}, logger)
	if err != nil {
		b.Fatal(err)
	}
	// Each call listens on a topic of its own (its operation id), the
	// fastest configuration: a shared reply topic would hand every reply to
	// every waiting caller.
	replyTopic := func(id requestreply.OperationID) string { return "wm_replies." + string(id) }
	backend, err := requestreply.NewPubSubBackend[Doubled](requestreply.PubSubBackendConfig{
		Publisher: pub,
		SubscriberConstructor: func(requestreply.PubSubBackendSubscribeParams) (message.Subscriber, error) {
			return replies, nil
		},
		GenerateSubscribeTopic: func(p requestreply.PubSubBackendSubscribeParams) (string, error) {
			return replyTopic(p.OperationID), nil
		},
		GeneratePublishTopic: func(p requestreply.PubSubBackendPublishParams) (string, error) {
			return replyTopic(p.OperationID), nil
		},
		Logger:           logger,
		AckCommandErrors: true,
	}, requestreply.BackendPubsubJSONMarshaler[Doubled]{})
	if err != nil {
		b.Fatal(err)
	}
	bus, err := cqrs.NewCommandBusWithConfig(pub, cqrs.CommandBusConfig{
		GeneratePublishTopic: func(cqrs.CommandBusGeneratePublishTopicParams) (string, error) { return "wm_commands", nil },
		Marshaler:            cqrs.JSONMarshaler{},
		Logger:               logger,
	})
	if err != nil {
		b.Fatal(err)
	}
	proc, err := cqrs.NewCommandProcessorWithConfig(r, cqrs.CommandProcessorConfig{
		GenerateSubscribeTopic: func(cqrs.CommandProcessorGenerateSubscribeTopicParams) (string, error) { return "wm_commands", nil },
		SubscriberConstructor: func(cqrs.CommandProcessorSubscriberConstructorParams) (message.Subscriber, error) {
			return sub, nil
		},
		Marshaler: cqrs.JSONMarshaler{},
		Logger:    logger,
	})
	if err != nil {
		b.Fatal(err)
	}
	err = proc.AddHandlers(requestreply.NewCommandHandlerWithResult[Double, Doubled]("double", backend,
		func(ctx context.Context, q *Double) (Doubled, error) {
			return Doubled{N: q.N, Result: 2 * q.N}, nil
		}))
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(runCtx) }()
	b.Cleanup(func() { cancel(); <-done })
	<-r.Running()
	return func(ctx context.Context, n int) (int, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		reply, err := requestreply.SendWithReply[Doubled](ctx, bus, backend, &Double{N: n})
		if err != nil {
			return 0, err
		}
		if reply.Error != nil {
			return 0, reply.Error
		}
		return reply.HandlerResult.Result, nil
	}
}

// BenchmarkRequestReplyDerived compares the reply transport derived from
// the App's transport (no reply options) with today's explicit setup (a
// replyamqp or replynats pair given with WithReplySubscriber and
// WithReplyPublisher), on RabbitMQ and NATS through Hexeract's adapters
// (requests on durable queues / JetStream), with 1 and 16 callers. One App
// is responder and caller.
//
//	go test ./reqreply -run '^$' -bench RequestReplyDerived -benchtime=2000x
func BenchmarkRequestReplyDerived(b *testing.B) {
	for _, tname := range []string{"amqp", "nats"} {
		for _, callers := range []int{1, 16} {
			for _, impl := range []string{"derived", "explicit"} {
				b.Run(fmt.Sprintf("transport=%s/callers=%d/impl=%s", tname, callers, impl), func(b *testing.B) {
					runRequests(b, callers, setupAdapterApp(b, tname, impl == "explicit"))
				})
			}
		}
	}
}

// setupAdapterApp builds one App on adapters/amqp or adapters/nats, with
// the derived reply transport or the explicit replyamqp/replynats pair.
func setupAdapterApp(b *testing.B, tname string, explicit bool) func(ctx context.Context, n int) (int, error) {
	sfx := testenv.Suffix()
	group := "bench-" + sfx
	var (
		pub        message.Publisher
		sub        message.Subscriber
		replyPub   message.Publisher
		replySub   message.Subscriber
		topicNames hexeract.Option
		err        error
	)
	switch tname {
	case "amqp":
		url := testenv.AMQPURL(b)
		pub, sub, err = adamqp.New(adamqp.Config{URL: url, Group: group}, nil)
		if err != nil {
			b.Fatal(err)
		}
		topicNames = hexeract.WithTopicFunc(func(name string) string { return name + "_" + sfx })
		b.Cleanup(func() {
			_ = testenv.DeleteAMQPGroupQueues(url, group)
			_ = testenv.DeleteAMQPExchanges(url, "_"+sfx)
		})
		if explicit {
			if replyPub, err = replyamqp.NewReplyPublisher(url, nil); err != nil {
				b.Fatal(err)
			}
			if replySub, err = replyamqp.NewReplySubscriber(url, nil); err != nil {
				b.Fatal(err)
			}
		}
	case "nats":
		url := testenv.NATSURL(b)
		pub, sub, err = adnats.New(adnats.Config{URL: url, Group: group}, nil)
		if err != nil {
			b.Fatal(err)
		}
		topicNames = hexeract.WithTopicFunc(func(name string) string { return name + "." + sfx })
		b.Cleanup(func() {
			conn, err := nc.Connect(url)
			if err != nil {
				return
			}
			defer conn.Close()
			if js, err := conn.JetStream(); err == nil {
				_ = js.DeleteStream(adnats.StreamName(Double{}.MessageType() + "." + sfx))
			}
		})
		if explicit {
			if replyPub, err = replynats.NewReplyPublisher(url, nil); err != nil {
				b.Fatal(err)
			}
			if replySub, err = replynats.NewReplySubscriber(url, nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	app, err := hexeract.New(hexeract.WithPubSub(pub, sub), topicNames, hexeract.WithLogger(quietLogger()))
	if err != nil {
		b.Fatal(err)
	}
	var hopts []reqreply.HandlerOption
	var copts []reqreply.ClientOption
	if explicit {
		hopts = append(hopts, reqreply.WithReplyPublisher(replyPub))
		copts = append(copts, reqreply.WithReplySubscriber(replySub))
	}
	err = reqreply.Handle(app, func(ctx context.Context, q Double) (Doubled, error) {
		return Doubled{N: q.N, Result: 2 * q.N}, nil
	}, hopts...)
	if err != nil {
		b.Fatal(err)
	}
	c, err := reqreply.NewClient(app, copts...)
	if err != nil {
		b.Fatal(err)
	}
	if explicit == (c.ReplyVia() != "") {
		b.Fatalf("explicit=%t but ReplyVia=%q", explicit, c.ReplyVia())
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = app.Run(runCtx) }()
	b.Cleanup(func() {
		cancel()
		<-done
		_ = app.Close()
		for _, cl := range []interface{ Close() error }{replySub, replyPub, sub, pub} {
			if cl != nil && !reflect.ValueOf(cl).IsNil() {
				_ = cl.Close()
			}
		}
	})
	<-app.Running()
	return func(ctx context.Context, n int) (int, error) {
		r, err := reqreply.Request[Double, Doubled](ctx, app, Double{N: n}, reqreply.Timeout(10*time.Second))
		return r.Result, err
	}
}
