package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/jackc/pgx/v5"
	nc "github.com/nats-io/nats.go"
	amqp091 "github.com/rabbitmq/amqp091-go"
	goredis "github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters"
	dlqapi "github.com/hexeract/hexeract/adapters/dlq"
	hsqs "github.com/hexeract/hexeract/adapters/sqs"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
)

// brokerEnv is one transport under test: its URL, the group flag the reads
// of the dead-letter topic take, and a snapshot of everything on the broker
// whose name carries the test's suffix.
type brokerEnv struct {
	url string
	// readGroup is the --group of reads and moves ("" but on RabbitMQ,
	// where it picks the group's dead-letter queue).
	readGroup string
	// moveArgs are extra flags of "dlq move" (Kafka: a group to commit).
	moveArgs []string
	// movedGroup is the --group that counts what is left after a move
	// (Kafka: the moving group, whose offsets record what was moved).
	movedGroup string
	snapshot   func(t *testing.T) string
}

// dlqScenario runs an App on the transport whose handler fails permanently
// while failing is set, publishes three orders and waits until the three
// dead letters are on topic.dlq.
type dlqScenario struct {
	env          brokerEnv
	group, topic string
	mu           sync.Mutex
	failing      bool
	calls        map[string]int
	faultSeen    bool
	redelivered  bool
}

func startDLQScenario(t *testing.T, env brokerEnv, group, suffix string) *dlqScenario {
	t.Helper()
	s := &dlqScenario{env: env, group: group, topic: "dlqt-" + suffix, failing: true, calls: map[string]int{}}
	tr, err := adapters.Open(context.Background(), env.url, adapters.WithGroup(group))
	if err != nil {
		t.Fatalf("open %s: %v", testenv.Redact(env.url), err)
	}
	t.Cleanup(func() { _ = tr.Close() })
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
		s.calls[o.ID]++
		env, _ := router.EnvelopeFrom(ctx)
		if env.Metadata.Get(router.KeyFaultError) != "" {
			s.faultSeen = true
		}
		if env.Metadata.Get("_watermill_amqp_redelivered") != "" {
			s.redelivered = true
		}
		if s.failing {
			return hexeract.Permanent(fmt.Errorf("order rejected: %s", o.ID))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	testenv.StartApp(t, app)
	for _, id := range []string{"o-1", "o-2", "o-3"} {
		if err := app.Publish(context.Background(), cliOrder{ID: id, Bad: true}); err != nil {
			t.Fatal(err)
		}
	}
	s.waitCount(t, 3)
	return s
}

func (s *dlqScenario) dlq() string { return s.topic + ".dlq" }

func (s *dlqScenario) waitCount(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		var n int
		args := []string{"dlq", "count", s.dlq(), "--transport", s.env.url}
		if s.env.readGroup != "" {
			args = append(args, "--group", s.env.readGroup)
		}
		out, _, err := runCLI(t, args...)
		if err == nil {
			_, _ = fmt.Sscan(out, &n)
		}
		if err == nil && n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead letters on %s: %q (%v), want %d", s.dlq(), out, err, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *dlqScenario) callsOf() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		c[k] = v
	}
	return c
}

// testDLQBroker is the whole contract on one transport.
func testDLQBroker(t *testing.T, env brokerEnv, suffix string) {
	s := startDLQScenario(t, env, "grp-"+suffix, suffix)
	gflags := func() []string {
		if env.readGroup != "" {
			return []string{"--group", env.readGroup}
		}
		return nil
	}
	base := []string{"--transport", env.url}

	// Every read leaves the broker exactly as it was.
	reads := [][]string{
		append(append([]string{"dlq", "list", s.dlq()}, base...), gflags()...),
		append(append([]string{"dlq", "list", s.dlq(), "--limit", "2", "--json"}, base...), gflags()...),
		append(append([]string{"dlq", "list", s.dlq(), "--stack"}, base...), gflags()...),
		append(append([]string{"dlq", "count", s.dlq()}, base...), gflags()...),
		append([]string{"dlq", "topics"}, base...),
		append([]string{"dlq", "list", "nosuch-" + suffix + ".dlq"}, base...),
	}
	if !strings.HasPrefix(env.url, "sqs") {
		reads = append(reads, append([]string{"dlq", "list", s.dlq(), "--group", "nosuch-" + suffix}, base...))
	}
	// The App may still be settling what it consumed (SQS: messages it
	// dead-lettered are invisible until their delete lands): start from a
	// broker at rest, two equal snapshots in a row.
	settled(t, env.snapshot)
	for _, args := range reads {
		before := env.snapshot(t)
		out, _, err := runCLI(t, args...)
		after := env.snapshot(t)
		if before != after {
			t.Errorf("%v changed the broker:\nbefore:\n%s\nafter:\n%s", args[:3], before, after)
		}
		switch {
		case args[1] == "list" && strings.HasPrefix(args[2], "nosuch-"):
			// SQS lists queue names ("." becomes "-").
			if err == nil || !errors.Is(err, dlqapi.ErrUnknown) || (!strings.Contains(err.Error(), s.dlq()) && !strings.Contains(err.Error(), s.topic+"-dlq")) {
				t.Errorf("list of an unknown topic: err = %v (want the existing %s listed)", err, s.dlq())
			}
		case flagValue(args, "--group") == "nosuch-"+suffix:
			if err == nil || !errors.Is(err, dlqapi.ErrUnknown) {
				t.Errorf("list with an unknown group: err = %v", err)
			}
			// RabbitMQ (the group's queue) and NATS (the group's consumer,
			// created by the App's dead-letter initialization) list it.
			if (strings.HasPrefix(env.url, "amqp") || strings.HasPrefix(env.url, "nats")) && err != nil && !strings.Contains(err.Error(), "grp-"+suffix) {
				t.Errorf("unknown group error does not list the App's group: %v", err)
			}
		case err != nil:
			t.Errorf("%v: %v", args, err)
		case args[1] == "list" && slicesContains(args, "--json"):
			if n := len(strings.Split(strings.TrimSpace(out), "\n")); n != 2 {
				t.Errorf("list --limit 2 --json printed %d lines:\n%s", n, out)
			}
		case args[1] == "list":
			for _, want := range []string{"3 dead letter(s) on " + s.dlq(), "order rejected: o-1", "order rejected: o-2", "order rejected: o-3", "from " + s.topic} {
				if !strings.Contains(out, want) {
					t.Errorf("list output lacks %q:\n%s", want, out)
				}
			}
		case args[1] == "count":
			if strings.TrimSpace(out) != "3" {
				t.Errorf("count printed %q", out)
			}
		case args[1] == "topics":
			if !strings.Contains(out, s.dlq()) && !strings.Contains(out, s.topic+"-dlq") {
				t.Errorf("topics lacks %s:\n%s", s.dlq(), out)
			}
		}
	}
	if before := s.callsOf(); len(before) != 3 {
		t.Fatalf("handler calls before the moves: %v", before)
	}

	// Kafka: a move without a group would start at the beginning of the
	// topic: refused.
	if env.movedGroup != "" {
		before := env.snapshot(t)
		out, _, err := runCLI(t, append([]string{"dlq", "move", s.dlq(), "-q"}, base...)...)
		if err == nil || !strings.Contains(err.Error(), "needs a group") || !strings.Contains(out, "0 dead letter(s) moved") {
			t.Errorf("move without a group on Kafka: err = %v\n%s", err, out)
		}
		out, _, err = runCLI(t, append([]string{"dlq", "move", s.dlq(), "-q", "--group", "nosuch-" + suffix}, base...)...)
		if !errors.Is(err, dlqapi.ErrUnknown) {
			t.Errorf("move with an unknown group on Kafka: err = %v\n%s", err, out)
		}
		if after := env.snapshot(t); before != after {
			t.Errorf("refused Kafka moves changed the broker:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	}

	// A destination without subscriber is refused, nothing moves.
	before := env.snapshot(t)
	out, _, err := runCLI(t, append(append(append([]string{"dlq", "move", s.dlq(), "-q", "--to", "nosub-" + suffix}, base...), gflags()...), env.moveArgs...)...)
	if err == nil || !errors.Is(err, dlqapi.ErrNoSubscriber) || !strings.Contains(out, "0 dead letter(s) moved") {
		t.Errorf("move to a topic without subscriber: err = %v\n%s", err, out)
	}
	if after := env.snapshot(t); before != after {
		t.Errorf("refused move changed the broker:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// The handler still fails: the move makes one pass and stops; each
	// dead letter is handled once more and dead-lettered again.
	done := make(chan struct{})
	go func() {
		defer close(done)
		out, _, err = runCLI(t, append(append(append([]string{"dlq", "move", s.dlq(), "-q"}, base...), gflags()...), env.moveArgs...)...)
	}()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		t.Fatal("dlq move did not stop")
	}
	if err != nil || !strings.Contains(out, "3 dead letter(s) moved from "+s.dlq()) || !strings.Contains(out, "moved 3 message(s) to "+s.topic) {
		t.Fatalf("move: %v\n%s", err, out)
	}
	if env.movedGroup != "" {
		s.env.readGroup = env.movedGroup
	}
	s.waitCount(t, 3) // dead-lettered again
	time.Sleep(time.Second)
	calls := s.callsOf()
	for _, id := range []string{"o-1", "o-2", "o-3"} {
		if calls[id] != 2 {
			t.Errorf("%s handled %d times, want 2 (once, then once after the move): %v", id, calls[id], calls)
		}
	}
	s.mu.Lock()
	if s.faultSeen {
		t.Error("a moved message still carried fault metadata")
	}
	if s.redelivered {
		t.Error("a moved message carried _watermill_amqp_redelivered")
	}
	s.failing = false
	s.mu.Unlock()

	// Fixed handler: the second move empties the dead-letter topic.
	out, _, err = runCLI(t, append(append(append([]string{"dlq", "move", s.dlq(), "-q"}, base...), gflags()...), env.moveArgs...)...)
	if err != nil || !strings.Contains(out, "3 dead letter(s) moved") {
		t.Fatalf("second move: %v\n%s", err, out)
	}
	testenv.WaitFor(t, 30*time.Second, "the moved messages handled", func() bool {
		c := s.callsOf()
		return c["o-1"] == 3 && c["o-2"] == 3 && c["o-3"] == 3
	})
	s.waitCount(t, 0)
}

func flagValue(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestDLQMoveInterrupted: a move cancelled after its first message (SIGINT
// in the CLI cancels the same context) returns what was done; the message
// in hand was finished, the others are still dead letters.
func TestDLQMoveInterrupted(t *testing.T) {
	suffix := testenv.Suffix()
	env := redisEnv(t, suffix)
	s := startDLQScenario(t, env, "grp-"+suffix, suffix)
	b, err := dlqapi.Open(context.Background(), env.url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res, err := b.Move(ctx, s.dlq(), dlqapi.MoveOptions{Moved: func(*message.Message, string) { cancel() }})
	if !errors.Is(err, context.Canceled) || res.Total != 1 {
		t.Fatalf("interrupted move: %d moved, err %v", res.Total, err)
	}
	// One was moved and dead-lettered again (the handler still fails):
	// the topic holds 2 untouched + 1 new.
	s.waitCount(t, 3)
	time.Sleep(500 * time.Millisecond)
	n := 0
	for _, c := range s.callsOf() {
		n += c
	}
	if n != 4 {
		t.Fatalf("handler calls %v, want 4 (3 + the one moved)", s.callsOf())
	}
}

func TestDLQBrokerRedis(t *testing.T) {
	suffix := testenv.Suffix()
	testDLQBroker(t, redisEnv(t, suffix), suffix)
}

func TestDLQBrokerNATS(t *testing.T) {
	suffix := testenv.Suffix()
	testDLQBroker(t, natsEnv(t, suffix), suffix)
}

func TestDLQBrokerPostgreSQL(t *testing.T) {
	suffix := testenv.Suffix()
	testDLQBroker(t, postgresEnv(t, suffix), suffix)
}

func TestDLQBrokerRabbitMQ(t *testing.T) {
	suffix := testenv.Suffix()
	testDLQBroker(t, amqpEnv(t, suffix), suffix)
}

func TestDLQBrokerKafka(t *testing.T) {
	suffix := testenv.Suffix()
	testDLQBroker(t, kafkaEnv(t, suffix), suffix)
}

func TestDLQBrokerSQS(t *testing.T) {
	suffix := testenv.Suffix()
	testDLQBroker(t, sqsEnv(t, suffix), suffix)
}

// lines sorts and joins snapshot lines.
func lines(ls []string) string {
	sort.Strings(ls)
	return strings.Join(ls, "\n")
}

func redisEnv(t *testing.T, suffix string) brokerEnv {
	url := testenv.RedisURL(t)
	opts, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(opts)
	ctx := context.Background()
	t.Cleanup(func() {
		keys, _ := c.Keys(ctx, "*"+suffix+"*").Result()
		if len(keys) > 0 {
			c.Del(ctx, keys...)
		}
		_ = c.Close()
	})
	return brokerEnv{url: url, snapshot: func(t *testing.T) string {
		keys, err := c.Keys(ctx, "*"+suffix+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		var ls []string
		for _, k := range keys {
			typ := c.Type(ctx, k).Val()
			ls = append(ls, fmt.Sprintf("key %s %s", k, typ))
			if typ != "stream" {
				continue
			}
			info := c.XInfoStream(ctx, k).Val()
			ls = append(ls, fmt.Sprintf("stream %s len=%d last=%s first=%s groups=%d", k, info.Length, info.LastGeneratedID, info.FirstEntry.ID, info.Groups))
			for _, g := range c.XInfoGroups(ctx, k).Val() {
				ls = append(ls, fmt.Sprintf("group %s/%s consumers=%d pending=%d last=%s read=%d lag=%d", k, g.Name, g.Consumers, g.Pending, g.LastDeliveredID, g.EntriesRead, g.Lag))
				for _, cons := range c.XInfoConsumers(ctx, k, g.Name).Val() {
					ls = append(ls, fmt.Sprintf("consumer %s/%s/%s pending=%d", k, g.Name, cons.Name, cons.Pending))
				}
			}
		}
		return lines(ls)
	}}
}

func natsEnv(t *testing.T, suffix string) brokerEnv {
	url := testenv.NATSURL(t)
	conn, err := nc.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	js, err := conn.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	streams := func() []*nc.StreamInfo {
		var out []*nc.StreamInfo
		for si := range js.StreamsInfo() {
			if strings.Contains(si.Config.Name, suffix) {
				out = append(out, si)
			}
		}
		return out
	}
	t.Cleanup(func() {
		for _, si := range streams() {
			_ = js.DeleteStream(si.Config.Name)
		}
		conn.Close()
	})
	return brokerEnv{url: url, snapshot: func(t *testing.T) string {
		var ls []string
		for _, si := range streams() {
			st := si.State
			ls = append(ls, fmt.Sprintf("stream %s msgs=%d first=%d last=%d deleted=%d consumers=%d", si.Config.Name, st.Msgs, st.FirstSeq, st.LastSeq, st.NumDeleted, st.Consumers))
			for ci := range js.ConsumersInfo(si.Config.Name) {
				ls = append(ls, fmt.Sprintf("consumer %s/%s delivered=%d ackfloor=%d ackpending=%d pending=%d redelivered=%d", si.Config.Name, ci.Name, ci.Delivered.Stream, ci.AckFloor.Stream, ci.NumAckPending, ci.NumPending, ci.NumRedelivered))
			}
		}
		return lines(ls)
	}}
}

func postgresEnv(t *testing.T, suffix string) brokerEnv {
	url := testenv.PostgresURL(t)
	pool := testenv.Postgres(t)
	ctx := context.Background()
	tables := func() []string {
		rows, err := pool.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_name LIKE $1`, "%"+suffix+"%")
		if err != nil {
			t.Fatal(err)
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	t.Cleanup(func() {
		for _, n := range tables() {
			_, _ = pool.Exec(ctx, `DROP TABLE IF EXISTS `+pgx.Identifier{n}.Sanitize())
		}
	})
	return brokerEnv{url: url, snapshot: func(t *testing.T) string {
		var ls []string
		for _, n := range tables() {
			var count int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{n}.Sanitize()).Scan(&count); err != nil {
				t.Fatal(err)
			}
			ls = append(ls, fmt.Sprintf("table %s rows=%d", n, count))
			if strings.Contains(n, "offsets_") {
				rows, err := pool.Query(ctx, `SELECT consumer_group || ' ' || COALESCE(offset_acked, -1) || ' ' || last_processed_transaction_id::text FROM `+pgx.Identifier{n}.Sanitize())
				if err != nil {
					t.Fatal(err)
				}
				offs, err := pgx.CollectRows(rows, pgx.RowTo[string])
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range offs {
					ls = append(ls, "offset "+n+" "+o)
				}
			}
		}
		return lines(ls)
	}}
}

func amqpEnv(t *testing.T, suffix string) brokerEnv {
	url := testenv.AMQPURL(t)
	mgmt := testenv.AMQPManagementURL(t) + "/api"
	get := func(t *testing.T, path string, v any) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, mgmt+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth("guest", "guest")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("RabbitMQ management API (enable it: rabbitmq-plugins enable rabbitmq_management): %v", err)
		}
		defer func() { _ = res.Body.Close() }()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("management API %s: %s", path, res.Status)
		}
		if err := json.NewDecoder(res.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := amqp091.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	type named struct {
		Name string
		Type string
	}
	t.Cleanup(func() {
		var qs, xs []named
		get(t, "/queues/%2F", &qs)
		get(t, "/exchanges/%2F", &xs)
		ch, err := conn.Channel()
		if err == nil {
			for _, q := range qs {
				if strings.Contains(q.Name, suffix) {
					_, _ = ch.QueueDelete(q.Name, false, false, false)
				}
			}
			for _, x := range xs {
				if strings.Contains(x.Name, suffix) {
					_ = ch.ExchangeDelete(x.Name, false, false)
				}
			}
		}
		_ = conn.Close()
	})
	return brokerEnv{url: url, readGroup: "grp-" + suffix, snapshot: func(t *testing.T) string {
		var qs, xs []named
		var bs []struct {
			Source, Destination string
			RoutingKey          string `json:"routing_key"`
		}
		get(t, "/queues/%2F", &qs)
		get(t, "/exchanges/%2F", &xs)
		get(t, "/bindings/%2F", &bs)
		var ls []string
		for _, q := range qs {
			if !strings.Contains(q.Name, suffix) {
				continue
			}
			ch, err := conn.Channel()
			if err != nil {
				t.Fatal(err)
			}
			info, err := ch.QueueDeclarePassive(q.Name, true, false, false, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			_ = ch.Close()
			ls = append(ls, fmt.Sprintf("queue %s ready=%d consumers=%d", q.Name, info.Messages, info.Consumers))
		}
		for _, x := range xs {
			if strings.Contains(x.Name, suffix) {
				ls = append(ls, "exchange "+x.Name+" "+x.Type)
			}
		}
		for _, b := range bs {
			if strings.Contains(b.Source+b.Destination, suffix) {
				ls = append(ls, fmt.Sprintf("binding %s -> %s (%s)", b.Source, b.Destination, b.RoutingKey))
			}
		}
		return lines(ls)
	}}
}

func kafkaEnv(t *testing.T, suffix string) brokerEnv {
	seeds := testenv.Kafka(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	return brokerEnv{url: "kafka://" + strings.Join(seeds, ","), moveArgs: []string{"--group", "mover-" + suffix, "--new-group"}, movedGroup: "mover-" + suffix, snapshot: func(t *testing.T) string {
		var ls []string
		tds, err := adm.ListTopics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ends, err := adm.ListEndOffsets(ctx, tds.Names()...)
		if err != nil {
			t.Fatal(err)
		}
		ends.Each(func(o kadm.ListedOffset) {
			ls = append(ls, fmt.Sprintf("topic %s/%d end=%d", o.Topic, o.Partition, o.Offset))
		})
		groups, err := adm.ListGroups(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range groups.Groups() {
			offs, err := adm.FetchOffsets(ctx, g)
			if err != nil {
				t.Fatal(err)
			}
			offs.Each(func(o kadm.OffsetResponse) {
				ls = append(ls, fmt.Sprintf("group %s %s/%d at=%d", g, o.Topic, o.Partition, o.At))
			})
		}
		return lines(ls)
	}}
}

func sqsEnv(t *testing.T, suffix string) brokerEnv {
	url := testenv.SQSURL(t)
	cfg, err := hsqs.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	client, err := cfg.NewClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	queues := func() []string {
		out, err := client.ListQueues(ctx, &awssqs.ListQueuesInput{QueueNamePrefix: aws.String("dlqt-" + suffix)})
		if err != nil {
			t.Fatal(err)
		}
		return out.QueueUrls
	}
	t.Cleanup(func() {
		for _, q := range queues() {
			_, _ = client.DeleteQueue(ctx, &awssqs.DeleteQueueInput{QueueUrl: aws.String(q)})
		}
		out, _ := client.ListQueues(ctx, &awssqs.ListQueuesInput{QueueNamePrefix: aws.String("nosub-" + suffix)})
		if out != nil && len(out.QueueUrls) > 0 {
			t.Errorf("a refused move created %v", out.QueueUrls)
		}
	})
	return brokerEnv{url: url, snapshot: func(t *testing.T) string {
		var ls []string
		for _, q := range queues() {
			out, err := client.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: aws.String(q), AttributeNames: []types.QueueAttributeName{
				types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
				types.QueueAttributeNameApproximateNumberOfMessagesDelayed}})
			if err != nil {
				t.Fatal(err)
			}
			a := out.Attributes
			ls = append(ls, fmt.Sprintf("queue %s visible=%s invisible=%s delayed=%s", q, a["ApproximateNumberOfMessages"], a["ApproximateNumberOfMessagesNotVisible"], a["ApproximateNumberOfMessagesDelayed"]))
		}
		return lines(ls)
	}}
}

// TestDLQMoveDropsRedeliveredRabbitMQ: a dead letter that carries
// watermill-amqp's _watermill_amqp_redelivered (its message had been
// redelivered before it failed) goes back to its topic without it.
func TestDLQMoveDropsRedeliveredRabbitMQ(t *testing.T) {
	suffix := testenv.Suffix()
	env := amqpEnv(t, suffix)
	s := startDLQScenario(t, env, "grp-"+suffix, suffix)
	b, err := dlqapi.Open(context.Background(), env.url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	var first *message.Message
	err = b.List(context.Background(), s.dlq(), dlqapi.Query{Group: env.readGroup, Limit: 1}, func(m *message.Message) error { first = m; return nil })
	if err != nil || first == nil {
		t.Fatalf("list: %v", err)
	}
	tr, err := adapters.Open(context.Background(), env.url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tr.Close() }()
	again := message.NewMessage("redelivered-"+suffix, first.Payload)
	for k, v := range first.Metadata {
		again.Metadata[k] = v
	}
	again.Metadata["_watermill_amqp_redelivered"] = "true"
	if err := tr.Publisher.Publish(s.dlq(), again); err != nil {
		t.Fatal(err)
	}
	s.waitCount(t, 4)
	s.mu.Lock()
	s.failing = false
	s.mu.Unlock()
	out, _, err := runCLI(t, "dlq", "move", s.dlq(), "-q", "--transport", env.url, "--group", env.readGroup)
	if err != nil || !strings.Contains(out, "4 dead letter(s) moved") {
		t.Fatalf("move: %v\n%s", err, out)
	}
	testenv.WaitFor(t, 30*time.Second, "the moved messages handled", func() bool { return s.callsOf()["o-1"] == 3 })
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.redelivered {
		t.Fatal("a moved message carried _watermill_amqp_redelivered back to its topic")
	}
}

// TestDLQListLargeRabbitMQ: a full listing of a dead-letter queue holding
// 2,003 messages prints all of them, twice in a row, and leaves the queue
// as it was (the old list printed 3 for a queue of 2,766).
func TestDLQListLargeRabbitMQ(t *testing.T) {
	suffix := testenv.Suffix()
	env := amqpEnv(t, suffix)
	s := startDLQScenario(t, env, "grp-"+suffix, suffix)
	tr, err := adapters.Open(context.Background(), env.url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tr.Close() }()
	batch := make([]*message.Message, 0, 2000)
	for i := range 2000 {
		m := message.NewMessage(fmt.Sprintf("bulk-%04d", i), []byte(`{}`))
		m.Metadata[router.KeyFaultTopic] = s.topic
		batch = append(batch, m)
	}
	if err := tr.Publisher.Publish(s.dlq(), batch...); err != nil {
		t.Fatal(err)
	}
	s.waitCount(t, 2003)
	for range 2 {
		before := env.snapshot(t)
		out, _, err := runCLI(t, "dlq", "list", s.dlq(), "--transport", env.url, "--group", env.readGroup, "--json")
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var rec struct{ UUID string }
			if err := json.Unmarshal([]byte(l), &rec); err != nil {
				t.Fatal(err)
			}
			ids[rec.UUID] = true
		}
		if len(ids) != 2003 {
			t.Fatalf("list printed %d distinct dead letters, want 2003", len(ids))
		}
		if after := env.snapshot(t); after != before {
			t.Fatalf("list changed the broker:\n%s\n%s", before, after)
		}
	}
}

// TestDLQMoveUnboundExchangeRabbitMQ: a destination exchange that exists
// but has no queue bound is refused with nothing moved, both when the
// management API shows the missing binding and, without the management
// API, by the mandatory publish that RabbitMQ returns.
func TestDLQMoveUnboundExchangeRabbitMQ(t *testing.T) {
	suffix := testenv.Suffix()
	env := amqpEnv(t, suffix)
	s := startDLQScenario(t, env, "grp-"+suffix, suffix)
	conn, err := amqp091.Dial(env.url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	unbound := "dlqt-" + suffix + "-unbound"
	if err := ch.ExchangeDeclare(unbound, "fanout", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	before := env.snapshot(t)
	out, _, err := runCLI(t, "dlq", "move", s.dlq(), "-q", "--transport", env.url, "--group", env.readGroup, "--to", unbound)
	if !errors.Is(err, dlqapi.ErrNoSubscriber) || !strings.Contains(out, "0 dead letter(s) moved") {
		t.Fatalf("move to an unbound exchange: %v\n%s", err, out)
	}
	if after := env.snapshot(t); after != before {
		t.Fatalf("refused move changed the broker:\n%s\n%s", before, after)
	}

	// No management API: the mandatory publish is returned.
	b, err := dlqapi.Open(context.Background(), env.url, dlqapi.WithManagementURL("http://127.0.0.1:1/api"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	res, err := b.Move(context.Background(), s.dlq(), dlqapi.MoveOptions{Group: env.readGroup, To: unbound})
	if !errors.Is(err, dlqapi.ErrNoSubscriber) || res.Total != 0 {
		t.Fatalf("move without the management API: %d moved, %v", res.Total, err)
	}
	if after := env.snapshot(t); after != before {
		t.Fatalf("returned publish changed the broker:\n%s\n%s", before, after)
	}
	calls := s.callsOf()
	if len(calls) != 3 || calls["o-1"] != 1 {
		t.Fatalf("handler calls %v", calls)
	}
}

// settled waits, up to 10 s, until two snapshots taken 200 ms apart are
// equal: the broker is at rest before a read is compared against it.
func settled(t *testing.T, snapshot func(*testing.T) string) {
	t.Helper()
	prev := snapshot(t)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		cur := snapshot(t)
		if cur == prev {
			return
		}
		prev = cur
	}
	t.Fatalf("the broker did not come to rest in 10 s; last snapshot:\n%s", prev)
}
