package adapters_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters"
	"github.com/hexeract/hexeract/adapters/internal/suite"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/router"
)

type orderPlaced struct {
	OrderID string `json:"order_id"`
	Seq     int    `json:"seq"`
}

func (orderPlaced) MessageType() string { return "orders.placed" }

func (o orderPlaced) OrderingKey() string { return o.OrderID }

// roundTrip publishes n typed messages through an App on the transport and
// checks that a typed handler gets each exactly as sent, with its envelope.
func roundTrip(t *testing.T, rawURL string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tr, err := adapters.Open(ctx, rawURL, adapters.WithGroup("rt-"+testenv.Suffix()))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer tr.Close()
	suffix := testenv.Suffix()
	app, err := hexeract.New(
		hexeract.WithPubSub(tr.Publisher, tr.Subscriber),
		hexeract.WithTopicFunc(func(name string) string { return name + "." + suffix }),
		hexeract.WithSource("/adapters-test"),
	)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[int]orderPlaced{}
	envs := map[int]router.Envelope{}
	done := make(chan struct{})
	err = hexeract.HandleFunc(app, func(ctx context.Context, m orderPlaced) error {
		env, _ := router.EnvelopeFrom(ctx)
		mu.Lock()
		defer mu.Unlock()
		got[m.Seq] = m
		envs[m.Seq] = env
		if len(got) == n {
			close(done)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	stopApp := testenv.StartApp(t, app)
	for i := range n {
		if err := app.Publish(ctx, orderPlaced{OrderID: fmt.Sprintf("o-%d", i%3), Seq: i}); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
	}
	select {
	case <-done:
	case <-ctx.Done():
		mu.Lock()
		t.Fatalf("received %d of %d messages", len(got), n)
	}
	stopApp()
	mu.Lock()
	defer mu.Unlock()
	for i := range n {
		m, env := got[i], envs[i]
		if m.OrderID != fmt.Sprintf("o-%d", i%3) {
			t.Errorf("message %d: order id %q", i, m.OrderID)
		}
		if env.Type != "orders.placed" || env.Source != "/adapters-test" || env.SpecVersion != "1.0" || env.ID == "" || env.CorrelationID != env.ID {
			t.Errorf("message %d: envelope %+v", i, env)
		}
		if pk := env.Metadata.Get(router.KeyPartitionKey); pk != m.OrderID {
			t.Errorf("message %d: partition key %q, want %q", i, pk, m.OrderID)
		}
		if env.Topic != "orders.placed."+suffix {
			t.Errorf("message %d: topic %q", i, env.Topic)
		}
	}
}

func TestRoundTripMem(t *testing.T) { roundTrip(t, "mem://", 50) }

func TestRoundTripAMQP(t *testing.T) {
	suite.BrokerInUse(t)
	roundTrip(t, testenv.AMQPURL(t), 50)
}

func TestRoundTripNATS(t *testing.T) {
	suite.BrokerInUse(t)
	roundTrip(t, testenv.NATSURL(t), 50)
}

func TestRoundTripPostgres(t *testing.T) { roundTrip(t, testenv.PostgresURL(t), 50) }

func TestRoundTripRedis(t *testing.T) { roundTrip(t, testenv.RedisURL(t), 50) }

func TestRoundTripKafka(t *testing.T) {
	brokers := testenv.Kafka(t)
	roundTrip(t, "kafka://"+strings.Join(brokers, ",")+"/", 50)
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		url  string
		want string
	}{
		{"", "empty transport URL"},
		{"rabbit://guest:s3cr3t-pw@localhost/", `unknown transport scheme "rabbit"`},
		{"localhost:5672", "unknown transport scheme"},
		{"just-a-word", "no scheme"},
		{"amqp://guest:s3cr3t-pw@[::1/", "malformed URL"},
		{"amqp://guest:s3cr3t-pw@localhost/?prefetch=many", `prefetch="many"`},
		{"amqp://guest:s3cr3t-pw@localhost/?gruop=x", "unknown parameter(s) gruop"},
		{"kafka://", "empty broker address"},
		{"kafka://u:s3cr3t-pw@host:9092/?acks=some", `acks="some"`},
		{"nats://u:s3cr3t-pw@host:4222/?ack_wait=long", `ack_wait="long"`},
		{"nats://host:4222/?group=a.b", "must not contain"},
		{"mem://?buffer=16", "unknown parameter(s) buffer"},
		{"postgres://u:s3cr3t-pw@localhost/db?schema=Bad-Name", "not a valid schema name"},
		{"postgres://u:s3cr3t-pw@localhost/db?poll_interval=often", `poll_interval="often"`},
		{"redis://u:s3cr3t-pw@localhost:6379/0?max_len=lots", `max_len="lots"`},
		{"redis://u:s3cr3t-pw@localhost:6379/0?bogus=1", "bogus"},
	}
	for _, c := range cases {
		t.Run(c.url, func(t *testing.T) {
			tr, err := adapters.Open(ctx, c.url)
			if err == nil {
				tr.Close()
				t.Fatalf("Open(%q) succeeded", c.url)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) {
				t.Errorf("error %q does not contain %q", msg, c.want)
			}
			if strings.Contains(msg, "s3cr3t-pw") {
				t.Errorf("error leaks the password: %q", msg)
			}
			if strings.Contains(c.want, "scheme") || c.want == "malformed URL" || c.want == "empty transport URL" {
				if !strings.Contains(msg, "amqp://") || !strings.Contains(msg, "mem://") {
					t.Errorf("error %q does not list the supported schemes", msg)
				}
			}
		})
	}
}

// TestOpenNeverLeaksCredentials connects with a wrong password to the real
// brokers and to closed ports, and checks errors and logs.
func TestOpenNeverLeaksCredentials(t *testing.T) {
	const secret = "Wr0ng-s3cr3t"
	urls := []string{
		"amqp://guest:" + secret + "@127.0.0.1:1/",
		"nats://user:" + secret + "@127.0.0.1:1",
		"kafka://user:" + secret + "@127.0.0.1:1/",
		"postgres://postgres:" + secret + "@127.0.0.1:1/test?sslmode=disable&connect_timeout=2",
		"redis://user:" + secret + "@127.0.0.1:1/0",
	}
	// The real RabbitMQ with a wrong password: an authentication failure.
	if u, err := url.Parse(testenv.AMQPURL(t)); err == nil && u.User != nil {
		u.User = url.UserPassword(u.User.Username(), secret)
		urls = append(urls, u.String())
	}
	for _, u := range urls {
		t.Run(testenv.Redact(u), func(t *testing.T) {
			var logs strings.Builder
			var mu sync.Mutex
			logger := watermill.NewStdLoggerWithOut(&lockedWriter{w: &logs, mu: &mu}, true, true)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			tr, err := adapters.Open(ctx, u, adapters.WithWatermillLogger(logger))
			if err == nil {
				// Kafka connects lazily for consumers but the producer needs metadata; either way, close.
				tr.Close()
				t.Fatalf("Open(%s) succeeded with a wrong password or closed port", testenv.Redact(u))
			}
			mu.Lock()
			defer mu.Unlock()
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error leaks the password: %v", err)
			}
			if strings.Contains(logs.String(), secret) {
				t.Errorf("logs leak the password:\n%s", logs.String())
			}
		})
	}
}

type lockedWriter struct {
	w  *strings.Builder
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestOpenFromEnv(t *testing.T) {
	t.Setenv(adapters.EnvTransport, "")
	if _, err := adapters.OpenFromEnv(context.Background()); err == nil || !strings.Contains(err.Error(), adapters.EnvTransport) {
		t.Fatalf("OpenFromEnv with the variable unset: %v", err)
	}
	t.Setenv(adapters.EnvTransport, "mem://?group=g")
	tr, err := adapters.OpenFromEnv(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if tr.Scheme != "mem" {
		t.Errorf("scheme %q", tr.Scheme)
	}
}

// sqsURL returns HEXERACT_TEST_SQS or the fauxqs emulator's URL, starting
// the emulator when it is not running (testenv.SQSURL).
func sqsURL(t *testing.T) string {
	t.Helper()
	return testenv.SQSURL(t) + "&group=ignored&wait=1s"
}

func TestRoundTripSQS(t *testing.T) { roundTrip(t, sqsURL(t), 30) }
