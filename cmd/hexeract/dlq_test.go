package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

type cliOrder struct {
	ID  string `json:"id"`
	Bad bool   `json:"bad"`
}

func (cliOrder) MessageType() string { return "cli.order" }

// runCLI runs the hexeract command with args, every flag of the dlq
// commands reset to its default first (cobra keeps flag values between
// Execute calls).
func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	var reset func(*cobra.Command)
	reset = func(c *cobra.Command) {
		for _, fs := range []*pflag.FlagSet{c.Flags(), c.PersistentFlags()} {
			fs.VisitAll(func(f *pflag.Flag) {
				if f.Name != "help" {
					_ = f.Value.Set(f.DefValue)
					f.Changed = false
				}
			})
		}
		for _, sub := range c.Commands() {
			reset(sub)
		}
	}
	for _, c := range rootCmd.Commands() {
		if c.Name() == "dlq" {
			reset(c)
		}
	}
	rootCmd.SetOut(&out)
	rootCmd.SetErr(&errOut)
	rootCmd.SetArgs(args)
	err = rootCmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// dlqScenario runs an App on the transport whose handler fails permanently
// for bad orders, publishes three bad and one good order and waits until
// "dlq list" shows the three dead letters.
type dlqScenario struct {
	url, group, topic string
	mu                sync.Mutex
	failing           bool
	handled           chan string
	faultSeen         bool
}

func startDLQScenario(t *testing.T, url string) *dlqScenario {
	t.Helper()
	suffix := testenv.Suffix()
	s := &dlqScenario{url: url, group: "cli-" + suffix, topic: "cli-orders-" + suffix, failing: true, handled: make(chan string, 16)}
	ctx, cancel := context.WithCancel(context.Background())
	tr, err := adapters.Open(ctx, url, adapters.WithGroup(s.group))
	if err != nil {
		t.Fatalf("open %s: %v", testenv.Redact(url), err)
	}
	app, err := hexeract.New(
		hexeract.WithPubSub(tr.Publisher, tr.Subscriber),
		hexeract.WithLogger(slog.New(slog.DiscardHandler)),
		hexeract.WithTopicFunc(func(string) string { return s.topic }),
		hexeract.WithDefaultMiddleware(func(c *middleware.DefaultConfig) { c.Retry.InitialInterval = time.Millisecond }),
	)
	if err != nil {
		t.Fatal(err)
	}
	err = hexeract.HandleFunc(app, func(ctx context.Context, o cliOrder) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.failing && o.Bad {
			return hexeract.Permanent(fmt.Errorf("order rejected: %s", o.ID))
		}
		if env, _ := router.EnvelopeFrom(ctx); env.Metadata.Get(middleware.KeyFaultError) != "" {
			s.faultSeen = true
		}
		s.handled <- o.ID
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = app.Close()
		_ = tr.Close()
	})
	select {
	case <-app.Running():
	case <-time.After(30 * time.Second):
		t.Fatal("app did not start")
	}
	for _, o := range []cliOrder{{"bad-1", true}, {"bad-2", true}, {"good-1", false}, {"bad-3", true}} {
		if err := app.Publish(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	if got := recvID(t, s.handled); got != "good-1" {
		t.Fatalf("handled %s", got)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _, err := runCLI(t, "dlq", "list", s.topic+".dlq", "--transport", url, "--group", s.group, "--wait", "1s")
		if err != nil {
			t.Fatalf("dlq list: %v", err)
		}
		if strings.Contains(out, "3 dead letter(s)") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead letters never reached %s.dlq; last list:\n%s", s.topic, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return s
}

func recvID(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case id := <-ch:
		return id
	case <-time.After(30 * time.Second):
		t.Fatal("timed out waiting for a handled message")
		return ""
	}
}

// testDLQListAndMove: list shows the fault details and leaves the dead
// letters in place (twice in a row); move puts them back on the original
// topic without fault metadata, where the (now fixed) handler takes them;
// a second move finds nothing left.
func testDLQListAndMove(t *testing.T, url string, queue bool) {
	s := startDLQScenario(t, url)
	dlqTopic := s.topic + ".dlq"
	out, _, err := runCLI(t, "dlq", "list", dlqTopic, "--transport", url, "--group", s.group, "--wait", "2s")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"3 dead letter(s) on " + dlqTopic, "error:  order rejected: bad-1", "order rejected: bad-2",
		"order rejected: bad-3", "from " + s.topic, "handler cli.order", "attempts 1", "permanent", "ce_type: cli.order"} {
		if !strings.Contains(out, want) {
			t.Errorf("list output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "good-1") {
		t.Errorf("good message listed:\n%s", out)
	}
	out, _, err = runCLI(t, "dlq", "list", dlqTopic, "--transport", url, "--group", s.group, "--wait", "2s", "--json")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("second list (json) printed %d lines, want 3 (list must leave messages in place):\n%s", len(lines), out)
	}
	for _, l := range lines {
		var rec struct {
			UUID  string
			Fault middleware.Fault
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		if rec.Fault.Topic != s.topic || rec.Fault.Attempts != 1 || !rec.Fault.Permanent || rec.Fault.LastFailure.IsZero() {
			t.Errorf("fault %+v", rec.Fault)
		}
	}

	s.mu.Lock()
	s.failing = false
	s.mu.Unlock()
	out, progress, err := runCLI(t, "dlq", "move", dlqTopic, "--transport", url, "--group", s.group, "--wait", "2s")
	if err != nil {
		t.Fatalf("move: %v\n%s", err, out)
	}
	if !strings.Contains(out, "3 dead letter(s) moved from "+dlqTopic) || !strings.Contains(out, "moved 3 message(s) to "+s.topic) {
		t.Errorf("move output:\n%s", out)
	}
	if !strings.Contains(progress, "moving "+dlqTopic) || !strings.Contains(progress, "3") {
		t.Errorf("no progress bar on stderr: %q", progress)
	}
	got := map[string]bool{}
	for range 3 {
		got[recvID(t, s.handled)] = true
	}
	if !got["bad-1"] || !got["bad-2"] || !got["bad-3"] {
		t.Errorf("handled after move: %v", got)
	}
	s.mu.Lock()
	if s.faultSeen {
		t.Error("a moved message still carried fault metadata")
	}
	s.mu.Unlock()

	out, _, err = runCLI(t, "dlq", "move", dlqTopic, "--transport", url, "--group", s.group, "--wait", "1s", "-q")
	if err != nil || !strings.Contains(out, "0 dead letter(s) moved") {
		t.Errorf("second move: %v\n%s", err, out)
	}
	if queue {
		out, _, _ = runCLI(t, "dlq", "list", dlqTopic, "--transport", url, "--group", s.group, "--wait", "1s")
		if !strings.Contains(out, "0 dead letter(s)") {
			t.Errorf("queue still lists dead letters after move:\n%s", out)
		}
	}
}

func TestDLQListAndMoveRabbitMQ(t *testing.T) { testDLQListAndMove(t, testenv.AMQPURL(t), true) }

func TestDLQListAndMoveRedis(t *testing.T) { testDLQListAndMove(t, testenv.RedisURL(t), false) }

// TestDLQMoveNeedsATopic: a message on a dead-letter topic without fault
// metadata is left in place and the error says to pass --to; with --to it
// is moved.
func TestDLQMoveNeedsATopic(t *testing.T) {
	url := testenv.RedisURL(t)
	suffix := testenv.Suffix()
	dlqTopic := "cli-raw-" + suffix + ".dlq"
	tr, err := adapters.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Publisher.Publish(dlqTopic, message.NewMessage("raw-1", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	group := "cli-" + suffix
	out, _, err := runCLI(t, "dlq", "move", dlqTopic, "--transport", url, "--group", group, "--wait", "2s", "-q")
	if err == nil || !strings.Contains(err.Error(), "--to") || !strings.Contains(out, "0 dead letter(s) moved") {
		t.Fatalf("err = %v, out:\n%s", err, out)
	}
	// On Redis the nacked message stays pending for the consumer that just
	// closed, until the adapter's idle time lets another consumer claim it;
	// read the stream with a second group.
	target := "cli-target-" + suffix
	out, _, err = runCLI(t, "dlq", "move", dlqTopic, "--transport", url, "--group", group+"-2", "--wait", "2s", "-q", "--to", target)
	if err != nil || !strings.Contains(out, "moved 1 message(s) to "+target) {
		t.Fatalf("err = %v, out:\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := tr.Subscriber.Subscribe(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-msgs:
		m.Ack()
		if m.UUID != "raw-1" || string(m.Payload) != "x" {
			t.Fatalf("moved message %s %q", m.UUID, m.Payload)
		}
	case <-ctx.Done():
		t.Fatal(errors.New("moved message not on the target topic"))
	}
}

func TestDLQNeedsATransport(t *testing.T) {
	t.Setenv(adapters.EnvTransport, "")
	_, _, err := runCLI(t, "dlq", "list", "x.dlq")
	if err == nil || !strings.Contains(err.Error(), adapters.EnvTransport) {
		t.Fatalf("err = %v", err)
	}
}

func TestDLQListAndMoveNATS(t *testing.T) { testDLQListAndMove(t, testenv.NATSURL(t), false) }

func TestDLQListAndMovePostgreSQL(t *testing.T) {
	testDLQListAndMove(t, testenv.PostgresURL(t), false)
}

func TestDLQListAndMoveKafka(t *testing.T) {
	seeds := testenv.Kafka(t)
	testDLQListAndMove(t, "kafka://"+strings.Join(seeds, ","), false)
}
