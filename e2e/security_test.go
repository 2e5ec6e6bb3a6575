package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hexeract/hexeract/store/postgres"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/adapters"
	"github.com/hexeract/hexeract/adapters/gochannel"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/saga"
	"github.com/hexeract/hexeract/scheduler"
)

// injections are table, schema and topic names an attacker (or a typo) could
// put in configuration. None may reach SQL.
func injections(canary string) []string {
	return []string{
		"x; DROP TABLE " + canary + "; --",
		`x"; DROP TABLE ` + canary + `; --`,
		"x' OR '1'='1",
		canary + " CASCADE",
		"public." + canary + ";DELETE FROM " + canary,
		"evil;--.outbox",
		"a.b.c",
		"Outbox",
		"out box",
		"out\x00box",
		"outbox/*comment*/",
		"",
		".outbox",
		"outbox.",
		strings.Repeat("a", 64),
		"ünïcode",
		"$1",
		"(SELECT 1)",
	}
}

// TestConfiguredNamesRefused tries SQL injection through every table and
// schema name Hexeract takes from configuration (outbox, relay, inbox,
// scheduler, saga store, the CLI flags) and through topic names where a
// transport builds names from them (PostgreSQL as a bus, NATS subjects):
// each is refused with an error, and a canary table survives.
func TestConfiguredNamesRefused(t *testing.T) {
	pool := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	canary := "e2e_canary_" + testenv.Suffix()
	if _, err := pool.Exec(ctx, `CREATE TABLE `+canary+` (id int); INSERT INTO `+canary+` VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+canary) })
	pub := gochannel.New(gochannel.Config{}, watermill.NopLogger{})
	defer pub.Close()

	constructors := map[string]func(name string) error{
		"outbox.New": func(n string) error { _, err := outbox.New(postgres.New(pool), outbox.WithTable(n)); return err },
		"outbox.NewRelay": func(n string) error {
			_, err := outbox.NewRelay(postgres.New(pool), pub, outbox.WithTable(n))
			return err
		},
		"outbox.NewInbox": func(n string) error {
			_, err := outbox.NewInbox(postgres.New(pool), outbox.WithInboxTable(n))
			return err
		},
		"scheduler.New": func(n string) error {
			_, err := scheduler.New(postgres.New(pool), scheduler.PublisherSink(pub), scheduler.WithTable(n))
			return err
		},
		"saga.NewSQLStore": func(n string) error {
			st, err := saga.NewSQLStore(postgres.New(pool), saga.WithTable(n))
			if err == nil {
				err = st.Migrate(ctx) // runs the SQL when accepted
			}
			return err
		},
	}
	refused := 0
	for what, build := range constructors {
		for _, name := range injections(canary) {
			err := build(name)
			if err == nil {
				t.Errorf("%s accepted the table name %q", what, name)
				continue
			}
			refused++
			if !strings.Contains(strings.ToLower(err.Error()), "name") && !strings.Contains(err.Error(), "table") {
				t.Errorf("%s refused %q with an error that does not say what to change: %v", what, name, err)
			}
		}
	}

	// The CLI's table flags.
	hx := cliBinary(t)
	db := withPassword(t, testenv.PostgresURL(t))
	for _, flagArgs := range [][]string{
		{"migrate", "up", "--outbox-table"},
		{"migrate", "up", "--inbox-table"},
		{"migrate", "up", "--saga-table"},
		{"migrate", "up", "--scheduler-table"},
		{"outbox", "status", "--table"},
		{"scheduler", "list", "--table"},
	} {
		for _, name := range injections(canary)[:6] {
			if name == "" {
				continue // "" means "none" for some flags
			}
			args := append(append([]string{"--database-url", db}, flagArgs...), name)
			out, err := exec.CommandContext(ctx, hx, args...).CombinedOutput()
			if err == nil {
				t.Errorf("hexeract %s %q succeeded:\n%s", strings.Join(flagArgs, " "), name, out)
				continue
			}
			refused++
			if strings.Contains(string(out), testPassword) {
				t.Errorf("hexeract %s printed the DSN password:\n%s", strings.Join(flagArgs, " "), out)
			}
		}
	}

	// Topic names that become SQL table names (PostgreSQL as a bus) or NATS
	// subjects.
	for rawURL, topics := range map[string][]string{
		db:                 {`t"; DROP TABLE ` + canary + `; --`, "t' OR 1=1 --", "a b", "t\x00", "t;", "t\"", "t/*"},
		testenv.NATSURL(t): {"a b", "t\x00", "a.*", "a.>", "a..b", ".a", "a\r\nPUB x 1"},
	} {
		tr, err := adapters.Open(ctx, rawURL, adapters.WithGroup("e2e_sec"))
		if err != nil {
			t.Fatal(err)
		}
		for _, topic := range topics {
			err := tr.Publisher.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte(`{}`)))
			if err == nil {
				t.Errorf("%s: publish to topic %q succeeded", tr.Scheme, topic)
				continue
			}
			refused++
		}
		_ = tr.Close()
	}

	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+canary).Scan(&n); err != nil || n != 1 {
		t.Fatalf("canary table damaged: rows %d, err %v", n, err)
	}
	t.Logf("%d injection attempts refused; canary table intact", refused)
}

// TestNoPasswordInOutput opens every transport and runs the CLI with URLs
// carrying a distinctive password, against servers that are down, with bad
// options and malformed URLs, and checks that no error or output shows it.
// (The campaign's process logs are scanned in TestCampaign and the
// in-process logs in TestBadInput.)
func TestNoPasswordInOutput(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pw := testPassword
	urls := []string{
		"amqp://guest:" + pw + "@127.0.0.1:1/",
		"amqp://guest:" + pw + "@127.0.0.1:5672/?bogus=1",
		"amqps://guest:" + pw + "@127.0.0.1:1/?group=a%zz",
		"nats://u:" + pw + "@127.0.0.1:1/",
		"nats://u:" + pw + "@127.0.0.1:4222/?ack_wait=forever",
		"kafka://u:" + pw + "@127.0.0.1:1/",
		"kafka://u:" + pw + "@127.0.0.1:1/?acks=some",
		"redis://:" + pw + "@127.0.0.1:1/0",
		"redis://:" + pw + "@127.0.0.1:6379/notanumber",
		"postgres://postgres:" + pw + "@127.0.0.1:1/test",
		"postgres://postgres:" + pw + "@127.0.0.1:5432/test?group=x&bogus=1",
		"sqs://AKIDE2E:" + pw + "@us-east-1/?endpoint=http://127.0.0.1:1",
		"sqs://AKIDE2E:" + pw + "@us-east-1/?wait=never",
		"ftp://u:" + pw + "@host/",
		"amqp://guest:" + pw + "@[::1/",
		"postgres://postgres:" + pw + "@127.0.0.1:5432/test\x7f",
	}
	failed := 0
	for _, u := range urls {
		octx, ocancel := context.WithTimeout(ctx, 20*time.Second)
		tr, err := adapters.Open(octx, u)
		if err == nil {
			// Some transports connect lazily: use it, so a connection
			// error surfaces.
			err = tr.Publisher.Publish("e2e.pw", message.NewMessage(watermill.NewUUID(), []byte("{}")))
			_ = tr.Close()
		}
		ocancel()
		if err == nil {
			continue
		}
		failed++
		if strings.Contains(err.Error(), pw) {
			t.Errorf("adapters.Open(%s): the error shows the password: %v", testenv.Redact(u), err)
		}
	}
	hx := cliBinary(t)
	good := withPassword(t, testenv.PostgresURL(t))
	cases := [][]string{
		{"--database-url", good, "migrate", "status", "--outbox-table", "e2e_pw_" + testenv.Suffix()},
		{"--database-url", good, "outbox", "status", "--table", "e2e_pw_missing"},
		{"--database-url", "postgres://postgres:" + pw + "@127.0.0.1:1/test", "migrate", "status"},
		{"--database-url", "postgres://postgres:" + pw + "@127.0.0.1:5432/no_such_db_e2e", "outbox", "status"},
		{"--database-url", "postgres://postgres:" + pw + "@[bad/test", "scheduler", "list"},
		{"--database-url", "postgres://postgres:" + pw + "@127.0.0.1:1/test", "saga", "list"},
	}
	// Every transport URL through the dead-letter commands (adapters/dlq),
	// a read and a move; on RabbitMQ the management API URL is derived from
	// the AMQP URL's credentials.
	for _, u := range urls {
		cases = append(cases,
			[]string{"dlq", "list", "e2e-pw.dlq", "--transport", u},
			[]string{"dlq", "move", "e2e-pw.dlq", "-q", "--transport", u, "--to", "e2e-pw"})
	}
	for _, args := range cases {
		cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
		out, _ := exec.CommandContext(cctx, hx, args...).CombinedOutput()
		ccancel()
		if strings.Contains(string(out), pw) {
			t.Errorf("hexeract %v printed the password:\n%s", redactArgs(args), out)
		}
	}
	t.Logf("%d transport URLs failed to open/publish and %d CLI runs checked; the password appeared in none", failed, len(cases))
}

func redactArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ReplaceAll(a, testPassword, "xxxxx")
	}
	return out
}

var cliBin string

// cliBinary builds cmd/hexeract once.
func cliBinary(t *testing.T) string {
	t.Helper()
	if cliBin != "" {
		return cliBin
	}
	dir := filepath.Dir(serviceBinary(t))
	bin := filepath.Join(dir, "hexeract")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/hexeract").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/hexeract: %v\n%s", err, out)
	}
	cliBin = bin
	return bin
}

// TestEmptyTopicRefused publishes to the empty topic on every transport
// that would otherwise build a name from it. Found by this campaign: the
// PostgreSQL bus (adapters/sql) accepted "" and created a table named after
// its prefix alone ("hexeract_bus_"), and Redis Streams accepted it as a
// stream key. (The in-memory transport builds no name from a topic.)
func TestEmptyTopicRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool := testenv.Postgres(t)
	prefix := "e2e_empty_" + testenv.Suffix() + "_"
	pgURL := testenv.PostgresURL(t)
	sep := "?"
	if strings.Contains(pgURL, "?") {
		sep = "&"
	}
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), `DROP TABLE IF EXISTS "`+prefix+`", "`+prefix+`offsets_"`)
	})
	for _, rawURL := range []string{pgURL + sep + "table_prefix=" + prefix, testenv.NATSURL(t), testenv.RedisURL(t)} {
		tr, err := adapters.Open(ctx, rawURL, adapters.WithGroup("e2e_empty"))
		if err != nil {
			t.Fatal(err)
		}
		err = tr.Publisher.Publish("", message.NewMessage(watermill.NewUUID(), []byte(`{}`)))
		if err == nil {
			t.Errorf("%s: publish to the empty topic succeeded; it must be refused with an error", tr.Scheme)
		}
		_ = tr.Close()
	}
}
