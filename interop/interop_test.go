package interop_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters/amqp"
	"github.com/hexeract/hexeract/adapters/kafka"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
)

// The messages of the exchange. Their wire names are what the Node service
// uses as CloudEvents types.

type UserRegistered struct {
	UserID string `json:"user_id"`
	Email  string `json:"email"`
}

func (UserRegistered) MessageType() string { return "users.registered" }

type OrderPlaced struct {
	OrderID     string `json:"order_id"`
	AmountCents int    `json:"amount_cents"`
}

func (OrderPlaced) MessageType() string { return "orders.placed" }

type OrderAccepted struct {
	OrderID string `json:"order_id"`
}

func (OrderAccepted) MessageType() string { return "orders.accepted" }

// transport opens the Go side of one transport and says how the Node
// program reaches it.
type transport struct {
	// newPubSub returns a publisher and a subscriber of group.
	newPubSub func(t *testing.T, group string) (message.Publisher, message.Subscriber)
	// node is the transport part of the Node program's configuration.
	node map[string]any
	// cleanup removes broker state the test created for topics.
	cleanup func(t *testing.T, topics []string, groups []string)
	// brokers are the Kafka seed brokers (Kafka only).
	brokers []string
}

// TestNodeRabbitMQ runs the exchange with the Node service over RabbitMQ:
// on the wire the envelope follows the CloudEvents AMQP binding
// (cloudEvents_ headers, content-type property).
func TestNodeRabbitMQ(t *testing.T) { run(t, rabbitMQ(t), modeBinary) }

// TestNodeRabbitMQStructured runs the exchange over RabbitMQ in CloudEvents
// structured content mode both ways: Node sends the whole event as an
// application/cloudevents+json body (the SDK's structured serialiser; the
// content type carries "; charset=utf-8"), and the Go App publishes through
// router.StructuredPublisher, which Node must read as structured events.
func TestNodeRabbitMQStructured(t *testing.T) { run(t, rabbitMQ(t), modeStructured) }

// TestNodeKafka runs the exchange with the Node service (kafkajs) over
// Kafka (kfake on loopback): the envelope is the CloudEvents Kafka binding.
func TestNodeKafka(t *testing.T) { run(t, kafkaTransport(t), modeBinary) }

// TestNodeKafkaStructured runs the exchange over Kafka in structured
// content mode both ways (the SDK's Kafka.structured and Kafka.toEvent).
func TestNodeKafkaStructured(t *testing.T) { run(t, kafkaTransport(t), modeStructured) }

// The CloudEvents content modes the exchange runs in.
const (
	modeBinary     = "binary"
	modeStructured = "structured"
)

func rabbitMQ(t *testing.T) transport {
	url := testenv.AMQPURL(t)
	return transport{
		newPubSub: func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
			pub, sub, err := amqp.New(amqp.Config{URL: url, Group: group}, nil)
			if err != nil {
				t.Fatalf("amqp.New: %v", err)
			}
			t.Cleanup(func() { _ = sub.Close(); _ = pub.Close() })
			return pub, sub
		},
		node: map[string]any{"transport": "amqp", "amqpURL": url},
		cleanup: func(t *testing.T, topics, groups []string) {
			conn, err := amqp091.Dial(url)
			if err != nil {
				t.Logf("cleanup: %v", err)
				return
			}
			defer conn.Close()
			ch, err := conn.Channel()
			if err != nil {
				return
			}
			defer ch.Close()
			for _, topic := range topics {
				for _, g := range groups {
					_, _ = ch.QueueDelete(amqp.QueueName(topic, g), false, false, false)
				}
				_ = ch.ExchangeDelete(topic, false, false)
			}
		},
	}
}

func kafkaTransport(t *testing.T) transport {
	brokers := testenv.Kafka(t)
	return transport{
		newPubSub: func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
			pub, sub, err := kafka.New(kafka.Config{Brokers: brokers, Group: group}, nil)
			if err != nil {
				t.Fatalf("kafka.New: %v", err)
			}
			t.Cleanup(func() { _ = sub.Close(); _ = pub.Close() })
			return pub, sub
		},
		node:    map[string]any{"transport": "kafka", "brokers": brokers},
		cleanup: func(*testing.T, []string, []string) {}, // the cluster goes with the test
		brokers: brokers,
	}
}

// nodeDir returns the Node program's directory after installing its
// dependencies when they are missing (testenv.NodeModules: npm ci, pinned by
// package-lock.json); the test fails, saying what is missing, when Node.js
// or npm is not installed.
func nodeDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("node")
	if err != nil {
		t.Fatal(err)
	}
	return testenv.NodeModules(t, dir)
}

// nodeLine is one line the Node program writes on stdout.
type nodeLine struct {
	Step          string         `json:"step"`
	Error         string         `json:"error"`
	ID            string         `json:"id"`
	Event         map[string]any `json:"event"`
	CorrelationID string         `json:"correlation_id"`
	CausationID   string         `json:"causation_id"`
}

// nodeProc is the running Node program.
type nodeProc struct {
	cmd   *exec.Cmd
	lines chan nodeLine
	done  chan error
	mu    sync.Mutex
	out   bytes.Buffer // stdout and stderr, for failure messages
}

func (p *nodeProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

// Output returns everything the program wrote so far.
func (p *nodeProc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func startNode(t *testing.T, ctx context.Context, dir string, cfg map[string]any) *nodeProc {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &nodeProc{lines: make(chan nodeLine, 16), done: make(chan error, 1)}
	p.cmd = exec.CommandContext(ctx, "node", "service.js")
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), "INTEROP_CONFIG="+string(raw))
	p.cmd.Stderr = p
	p.cmd.WaitDelay = 5 * time.Second
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(io.TeeReader(stdout, p))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var l nodeLine
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Step != "" {
				p.lines <- l
			}
		}
		close(p.lines)
		p.done <- p.cmd.Wait()
	}()
	return p
}

// next returns the next step the program reports, failing the test with the
// program's output when it fails, exits or falls silent.
func (p *nodeProc) next(t *testing.T, timeout time.Duration) nodeLine {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			t.Fatalf("the Node program exited early (%v); its output:\n%s", <-p.done, p.Output())
		}
		if l.Step == "fail" {
			t.Fatalf("the Node program disagrees: %s\nits output:\n%s", l.Error, p.Output())
		}
		return l
	case <-time.After(timeout):
		t.Fatalf("no word from the Node program in %s; its output:\n%s", timeout, p.Output())
	}
	panic("unreachable")
}

type handled struct {
	msg OrderPlaced
	env router.Envelope
}

func run(t *testing.T, tr transport, mode string) {
	dir := nodeDir(t)
	sfx := testenv.Suffix()
	prefix := "interop-" + sfx + "."
	group := "go-users-" + sfx
	dlqGroup := "dlq-check-" + sfx
	topicOf := func(name string) string { return prefix + name }
	placedTopic := topicOf(OrderPlaced{}.MessageType())
	dlqTopic := middleware.DLQTopic(placedTopic)
	t.Cleanup(func() {
		tr.cleanup(t, []string{topicOf("users.registered"), placedTopic, dlqTopic, topicOf("orders.accepted")}, []string{group, dlqGroup})
	})

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// The Go service: consumes orders.placed, replies orders.accepted.
	pub, sub := tr.newPubSub(t, group)
	if mode == modeStructured {
		pub = router.StructuredPublisher(pub, nil) // everything the App publishes, in structured mode
	}
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	app, err := hexeract.New(
		hexeract.WithPubSub(pub, sub),
		hexeract.WithSource("/users"),
		hexeract.WithTopicFunc(topicOf),
		hexeract.WithLogger(logger),
	)
	if err != nil {
		t.Fatal(err)
	}
	orders := make(chan handled, 4)
	err = hexeract.HandleFunc(app, func(ctx context.Context, o OrderPlaced) error {
		env, _ := router.EnvelopeFrom(ctx)
		orders <- handled{o, env}
		return app.Publish(ctx, OrderAccepted{OrderID: o.OrderID})
	})
	if err != nil {
		t.Fatal(err)
	}

	// A separate consumer of the dead-letter topic, subscribed before anything is published.
	_, dlqSub := tr.newPubSub(t, dlqGroup)
	deadLetters, err := dlqSub.Subscribe(ctx, dlqTopic)
	if err != nil {
		t.Fatalf("subscribe %s: %v", dlqTopic, err)
	}

	testenv.StartApp(t, app)

	// The Node service.
	user := UserRegistered{UserID: "u-" + sfx, Email: "ada-" + sfx + "@example.com"}
	goConversation := "conv-go-" + sfx
	nodeConversation := "conv-node-" + sfx
	orderID := "o-" + sfx
	cfg := map[string]any{
		"group":  "node-shop-" + sfx,
		"source": "/node-shop",
		"topics": map[string]string{
			"registered": topicOf("users.registered"),
			"placed":     placedTopic,
			"accepted":   topicOf("orders.accepted"),
		},
		"expect": map[string]any{
			"source":      "/users",
			"correlation": goConversation,
			"data":        map[string]any{"user_id": user.UserID, "email": user.Email},
		},
		"order":     map[string]any{"id": orderID, "amountCents": 4200, "correlation": nodeConversation},
		"sendBad":   true,
		"mode":      mode,
		"timeoutMs": 60000,
	}
	for k, v := range tr.node {
		cfg[k] = v
	}
	node := startNode(t, ctx, dir, cfg)
	if l := node.next(t, 30*time.Second); l.Step != "ready" {
		t.Fatalf("first step %q, want ready; output:\n%s", l.Step, node.Output())
	}

	// Go → Node: a users.registered event in a conversation of our own.
	msg, err := app.NewMessage(router.WithCorrelationID(ctx, goConversation), user)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Publisher().Publish(app.TopicFor(user), msg); err != nil {
		t.Fatalf("publish users.registered: %v", err)
	}

	var badID, goodID string
	var received, reply nodeLine
	for received.Step == "" || reply.Step == "" || badID == "" || goodID == "" {
		switch l := node.next(t, 60*time.Second); l.Step {
		case "published-bad":
			badID = l.ID
		case "published":
			goodID = l.ID
		case "received":
			received = l
		case "reply":
			reply = l
		case "done":
			t.Fatalf("the Node program finished without reporting every step; output:\n%s", node.Output())
		}
	}
	if l := node.next(t, 30*time.Second); l.Step != "done" {
		t.Fatalf("last step %q, want done; output:\n%s", l.Step, node.Output())
	}
	if err := <-node.done; err != nil {
		t.Fatalf("the Node program exited with %v; output:\n%s", err, node.Output())
	}

	// What Node read from Go, as the SDK parsed it.
	if got := received.Event["id"]; got != msg.UUID {
		t.Errorf("Node read id %v, Go published %s", got, msg.UUID)
	}
	published, _ := time.Parse(time.RFC3339Nano, msg.Metadata.Get(router.KeyTime))
	if got, _ := received.Event["time"].(string); !timeEqualMillis(got, published) {
		t.Errorf("Node read time %q, Go published %s", got, published.Format(time.RFC3339Nano))
	}
	if received.CorrelationID != goConversation {
		t.Errorf("Node read correlation_id %q, want %q", received.CorrelationID, goConversation)
	}

	// What Go read from Node.
	select {
	case h := <-orders:
		if h.msg != (OrderPlaced{OrderID: orderID, AmountCents: 4200}) {
			t.Errorf("handler got %+v", h.msg)
		}
		e := h.env
		if e.ID != goodID || e.Type != "orders.placed" || e.Source != "/node-shop" || e.SpecVersion != "1.0" ||
			e.ContentType != "application/json" || e.Time.IsZero() || e.CorrelationID != nodeConversation {
			t.Errorf("handler envelope = id %q type %q source %q specversion %q content-type %q time %v correlation %q; want id %q, orders.placed, /node-shop, 1.0, application/json, a time, %q",
				e.ID, e.Type, e.Source, e.SpecVersion, e.ContentType, e.Time, e.CorrelationID, goodID, nodeConversation)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the Go handler never got the order")
	}
	select {
	case h := <-orders:
		t.Errorf("the Go handler got a second order: %+v %+v", h.msg, h.env)
	default:
	}
	if reply.CausationID != goodID || reply.CorrelationID != nodeConversation {
		t.Errorf("reply correlation %q causation %q, want %q, %q", reply.CorrelationID, reply.CausationID, nodeConversation, goodID)
	}

	// The event without a type is in the dead-letter topic, with a fault
	// naming the attribute and, in structured mode, the mode; its id is the
	// event's in both modes.
	select {
	case dead := <-deadLetters:
		dead.Ack()
		f, ok := middleware.FaultOf(dead.Metadata)
		if !ok || !f.Permanent || f.Topic != placedTopic || f.Attempts != 1 {
			t.Errorf("fault = %+v; want permanent, topic %s, 1 attempt", f, placedTopic)
		}
		if dead.UUID != badID || dead.Metadata.Get(router.KeyFaultGeneratedID) != "" {
			t.Errorf("dead letter uuid %q (generated %q), want the bad event's id %q", dead.UUID, dead.Metadata.Get(router.KeyFaultGeneratedID), badID)
		}
		if dead.Metadata.Get(router.KeyType) != "" {
			t.Errorf("dead letter has ce_type %q", dead.Metadata.Get(router.KeyType))
		}
		switch mode {
		case modeStructured:
			if !strings.Contains(f.Error, "CloudEvents structured mode") || !strings.Contains(f.Error, "missing required attribute type") ||
				!strings.Contains(f.Error, `event "`+badID+`"`) {
				t.Errorf("fault error %q does not name structured mode, the event and the missing attribute", f.Error)
			}
			if ct := dead.Metadata.Get(router.KeyContentType); !strings.HasPrefix(ct, router.ContentTypeCloudEvents) {
				t.Errorf("dead letter content type %q; the original structured event is kept", ct)
			}
		default:
			if dead.Metadata.Get(router.KeyID) != badID {
				t.Errorf("dead letter ce_id %q, want %q", dead.Metadata.Get(router.KeyID), badID)
			}
			if !strings.Contains(f.Error, router.ErrMissingType.Error()) || !strings.Contains(f.Error, "ce_type") {
				t.Errorf("fault error %q does not name the missing attribute (want %q)", f.Error, router.ErrMissingType)
			}
		}
		t.Logf("dead letter %s: %s", dead.UUID, f.Error)
	case <-time.After(20 * time.Second):
		t.Fatalf("no dead letter for the event without type on %s", dlqTopic)
	}
}

// timeEqualMillis reports whether the RFC 3339 time s (as the JS SDK
// writes it, milliseconds) is want truncated to milliseconds.
func timeEqualMillis(s string, want time.Time) bool {
	got, err := time.Parse(time.RFC3339Nano, s)
	return err == nil && got.Equal(want.Truncate(time.Millisecond))
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
