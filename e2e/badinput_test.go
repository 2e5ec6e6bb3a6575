package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
)

// Good is the message type of the bad-input campaign's handler.
type Good struct {
	N     int  `json:"n"`
	Panic bool `json:"panic,omitempty"`
}

func (Good) MessageType() string { return "e2e.good" }

// secretValue must never appear in a dead letter.
const secretValue = "Bearer e2e-secret-token-7731"

// badInputTransports lists every transport with its URL and whether it
// carries a 10 MB message (false: the publish must fail with a clear error).
var badInputTransports = []struct {
	name   string
	url    func(t *testing.T) string
	big    bool
	bigErr string // expected in the refusal when !big
}{
	{"mem", func(*testing.T) string { return "mem://" }, true, ""},
	{"amqp", func(t *testing.T) string { return testenv.AMQPURL(t) }, true, ""},
	{"nats", func(t *testing.T) string { return natsURL(t) }, false, "maximum payload"},
	{"kafka", func(t *testing.T) string { return "kafka://" + strings.Join(testenv.Kafka(t), ",") + "/" }, false, "larger than"},
	{"redis", func(t *testing.T) string { return testenv.RedisURL(t) }, true, ""},
	{"postgres", func(t *testing.T) string {
		return withQuery(withPassword(t, testenv.PostgresURL(t)), "table_prefix={prefix}_bus_")
	}, true, ""},
	{"sqs", func(t *testing.T) string { return testenv.SQSURL(t) }, false, "over the limit"},
}

// TestBadInput feeds every transport garbage bytes, JSON of an unknown type,
// a known type with the wrong schema, missing and malformed envelope
// metadata, a 10 MB payload and a message whose handler panics, with good
// messages in between. Each bad one must end in the dead-letter topic with
// its fault metadata (and without its secret metadata), every good one must
// be handled, and the consumer must keep running.
func TestBadInput(t *testing.T) {
	servicesSteady(t)
	for _, tr := range badInputTransports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			badInput(t, tr.name, tr.url(t), tr.big, tr.bigErr)
		})
	}
}

type badCase struct {
	name    string
	payload []byte
	md      message.Metadata
	// fault is a substring of the expected hexeract_fault_error.
	fault string
	// big marks the 10 MB payload.
	big bool
}

func badCases() []badCase {
	env := func(typ string) message.Metadata {
		return message.Metadata{
			router.KeyType: typ, router.KeySpecVersion: "1.0", router.KeySource: "/e2e",
			router.KeyContentType: "application/json", router.KeyTime: time.Now().UTC().Format(time.RFC3339Nano),
		}
	}
	withSecret := func(md message.Metadata) message.Metadata {
		md["authorization"] = secretValue
		md["x-api-key"] = secretValue
		md["db_password"] = secretValue
		return md
	}
	garbage := []byte{0xff, 0xfe, 0x00, 0x01, '{', '"', 0x80, 0x9f, '\n', 'x'}
	big := bytes.Repeat([]byte{0xff, 'A', 0x00, 'z'}, 10<<20/4) // 10 MiB, not JSON
	malformed := message.Metadata{
		router.KeyType: "E2E GOOD ☃ ;--", router.KeySpecVersion: "0.0-bogus", router.KeyTime: "yesterday-ish",
		router.KeyID: "", router.KeyCorrelationID: strings.Repeat("c", 300), "content-type": "text/x-nonsense",
	}
	return []badCase{
		{name: "garbage bytes", payload: garbage, md: withSecret(env("e2e.good")), fault: "cannot decode"},
		{name: "unknown type", payload: []byte(`{"n": 1, "what": "unknown"}`), md: env("e2e.no-such-type"), fault: "unexpected message type"},
		{name: "wrong schema", payload: []byte(`{"n": "not a number", "panic": [1]}`), md: env("e2e.good"), fault: "cannot unmarshal"},
		{name: "missing envelope", payload: []byte(`{"n": 2}`), md: message.Metadata{}, fault: "missing required attribute ce_type"},
		{name: "malformed envelope", payload: []byte(`{"n": 3}`), md: malformed, fault: "unexpected message type"},
		{name: "10 MB payload", payload: big, md: env("e2e.good"), fault: "cannot decode", big: true},
		{name: "handler panic", payload: []byte(`{"n": -1, "panic": true}`), md: withSecret(env("e2e.good")), fault: "panic: e2e handler panic"},
	}
}

func badInput(t *testing.T, name, rawURL string, carriesBig bool, bigErr string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logs := &testenv.Logs{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	prefix := "e2e_bad_" + testenv.Suffix()
	group := prefix
	if strings.Contains(rawURL, "{prefix}") {
		// PostgreSQL as the bus: its tables are named after the test and
		// dropped at the end.
		rawURL = strings.ReplaceAll(rawURL, "{prefix}", prefix)
		pool := testenv.Postgres(t)
		t.Cleanup(func() { dropLike(t, pool, prefix+"_bus_") })
	}
	tr, err := adapters.Open(ctx, rawURL, adapters.WithGroup(group), adapters.WithWatermillLogger(watermill.NewSlogLogger(logger)))
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer tr.Close()
	topicOf := func(typ string) string { return prefix + "." + typ }
	topic := topicOf(Good{}.MessageType())
	dlqTopic := middleware.DLQTopic(topic)

	app, err := hexeract.New(hexeract.WithPubSub(tr.Publisher, tr.Subscriber), hexeract.WithLogger(logger),
		hexeract.WithTopicFunc(topicOf), hexeract.WithRouterConfig(message.RouterConfig{CloseTimeout: 5 * time.Second}),
		hexeract.WithDefaultMiddleware(func(c *middleware.DefaultConfig) {
			c.Retry = middleware.RetryPolicy{MaxAttempts: 2, InitialInterval: 10 * time.Millisecond, MaxInterval: 20 * time.Millisecond}
		}))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	handled := map[int]int{}
	err = hexeract.HandleFunc(app, func(ctx context.Context, g Good) error {
		if g.Panic {
			panic("e2e handler panic")
		}
		mu.Lock()
		handled[g.N]++
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Subscribe to the dead-letter topic first, so nothing published to it
	// is missed (RabbitMQ drops messages for exchanges without a queue).
	dead, err := tr.Subscriber.Subscribe(ctx, dlqTopic)
	if err != nil {
		t.Fatalf("subscribe %s: %v", dlqTopic, err)
	}
	runErr := make(chan error, 1)
	runCtx, stop := context.WithCancel(ctx)
	go func() { runErr <- app.Run(runCtx) }()
	defer func() {
		stop()
		select {
		case err := <-runErr:
			if err != nil {
				t.Errorf("App.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("App.Run did not return after cancel")
		}
		if strings.Contains(logs.String(), testPassword) {
			t.Errorf("%s: the DSN password appears in the logs", name)
		}
	}()
	select {
	case <-app.Running():
	case <-ctx.Done():
		t.Fatal("router did not start")
	}

	goodN := 0
	publishGood := func() {
		goodN++
		m, err := app.NewMessage(ctx, Good{N: goodN})
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Publisher.Publish(topic, m); err != nil {
			t.Fatalf("publish good %d: %v", goodN, err)
		}
	}
	want := map[string]badCase{} // by UUID
	publishGood()
	for _, bc := range badCases() {
		m := message.NewMessage(watermill.NewUUID(), bc.payload)
		m.Metadata = bc.md
		err := tr.Publisher.Publish(topic, m)
		if bc.big && !carriesBig {
			if err == nil {
				t.Errorf("%s: the 10 MB publish succeeded; expected the broker/adapter to refuse it", name)
			} else if !strings.Contains(strings.ToLower(err.Error()), bigErr) {
				t.Errorf("%s: the 10 MB publish failed without a clear size error (want %q): %v", name, bigErr, err)
			} else {
				t.Logf("%s: 10 MB payload refused at publish time, as expected: %.200s", name, err)
			}
			publishGood()
			continue
		}
		if err != nil {
			t.Fatalf("publish %s: %v", bc.name, err)
		}
		want[m.UUID] = bc
		publishGood()
	}

	// Every bad message arrives in the dead-letter topic with its fault.
	got := map[string]bool{}
	deadline := time.After(90 * time.Second)
	for len(got) < len(want) {
		select {
		case d, ok := <-dead:
			if !ok {
				t.Fatalf("dead-letter subscription closed")
			}
			d.Ack()
			bc, known := want[d.UUID]
			if !known {
				t.Errorf("unexpected dead letter %s: %v", d.UUID, d.Metadata)
				continue
			}
			got[d.UUID] = true
			checkDeadLetter(t, name, bc, d, topic)
		case <-deadline:
			for id, bc := range want {
				if !got[id] {
					t.Errorf("%s: %q (%s) never reached %s", name, bc.name, id, dlqTopic)
				}
			}
			t.FailNow()
		}
	}
	// The consumer is still running and handles the good messages, each once
	// (the transports are at-least-once; a duplicate here would only be
	// reported).
	publishGood()
	waitUntil(t, 60*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == goodN
	}, func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("%s: handled %d of %d good messages: %v", name, len(handled), goodN, handled)
	})
	select {
	case err := <-runErr:
		t.Fatalf("the consumer stopped: %v", err)
	default:
	}
	t.Logf("%s: %d bad messages dead-lettered with fault metadata, %d good handled", name, len(got), goodN)
}

func checkDeadLetter(t *testing.T, name string, bc badCase, d *message.Message, topic string) {
	t.Helper()
	f, ok := middleware.FaultOf(d.Metadata)
	if !ok {
		t.Errorf("%s/%s: dead letter without fault metadata: %v", name, bc.name, d.Metadata)
		return
	}
	if !strings.Contains(f.Error, bc.fault) {
		t.Errorf("%s/%s: fault error %q does not mention %q", name, bc.name, f.Error, bc.fault)
	}
	if f.Topic != topic || f.Handler == "" || f.Attempts < 1 || f.FirstFailure.IsZero() || f.LastFailure.IsZero() {
		t.Errorf("%s/%s: incomplete fault record: %+v", name, bc.name, f)
	}
	if bc.name == "handler panic" && (f.Type != "panic" || !strings.Contains(f.Stack, "e2e")) {
		t.Errorf("%s/%s: panic fault without type/stack: type %q stack %.200q", name, bc.name, f.Type, f.Stack)
	}
	if !bytes.Equal(d.Payload, bc.payload) {
		t.Errorf("%s/%s: dead letter payload differs from the original (%d bytes, want %d)", name, bc.name, len(d.Payload), len(bc.payload))
	}
	for k, v := range d.Metadata {
		if strings.Contains(v, secretValue) {
			t.Errorf("%s/%s: secret metadata %q reached the dead letter", name, bc.name, k)
		}
	}
	js, _ := json.Marshal(f)
	t.Logf("%s/%s dead-lettered: %.300s", name, bc.name, js)
}

func waitUntil(t *testing.T, d time.Duration, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dropLike drops the tables whose names start with prefix.
func dropLike(t *testing.T, pool *pgxpool.Pool, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rows, err := pool.Query(ctx, `SELECT quote_ident(tablename) FROM pg_tables WHERE starts_with(tablename, $1)`, prefix)
	if err != nil {
		t.Logf("drop tables %s*: %v", prefix, err)
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Logf("drop tables %s*: %v", prefix, err)
		return
	}
	for _, n := range names {
		_, _ = pool.Exec(ctx, `DROP TABLE IF EXISTS `+n+` CASCADE`)
	}
}
