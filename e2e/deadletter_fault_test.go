package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for the test's reads
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/hexeract/hexeract/adapters"
	amqpadapter "github.com/hexeract/hexeract/adapters/amqp"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/mysql"
	"github.com/hexeract/hexeract/store/sqlite"
)

// dlRun is one run of the dead-letter fault test on one driver.
type dlRun struct {
	t        *testing.T
	driver   string
	prefix   string // table prefix, per run
	table    string // the dead-letter table, as the test's reads name it
	db       *sql.DB
	consumer *proc
	// killConns terminates the consumer's database connections (and only
	// its); nil when the driver has none (SQLite).
	killConns func() (int, error)
	// restartDB restarts the database server; nil when it cannot.
	restartDB func() error

	mu     sync.Mutex
	faults []string
}

func (r *dlRun) fault(s string) {
	r.mu.Lock()
	r.faults = append(r.faults, s)
	r.mu.Unlock()
	r.t.Logf("%s: %s", r.driver, s)
}

// counts returns, per message id, how many rows the dead-letter table
// holds, and the ids whose row is not what the producer sent (payload,
// topic, fault).
func (r *dlRun) counts(ctx context.Context, topic string, payloads map[string]string) (map[string]int, []string, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT message_id, payload, topic, fault_error FROM `+r.table)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	n := map[string]int{}
	var wrong []string
	for rows.Next() {
		var id, tp, fe string
		var payload []byte
		if err := rows.Scan(&id, &payload, &tp, &fe); err != nil {
			return nil, nil, err
		}
		n[id]++
		if payloads != nil && (payloads[id] != string(payload) || tp != topic || !strings.Contains(fe, "this handler always fails")) {
			wrong = append(wrong, fmt.Sprintf("%s (payload %q, topic %q, fault %q)", id, payload, tp, fe))
		}
	}
	return n, wrong, rows.Err()
}

func (r *dlRun) total(ctx context.Context) (int, error) {
	var n int
	err := r.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+r.table).Scan(&n)
	return n, err
}

// TestDeadLetterStoreUnderFaults: a consumer App with a store (PostgreSQL,
// MariaDB, SQLite) whose handler always fails dead-letters every message of
// a RabbitMQ topic into its table while the test SIGKILLs it several times
// mid-stream, terminates its database connections and, in the full form
// (HEXERACT_E2E_FULL=1), restarts the database server. At the end every
// produced message is in the table exactly once, nothing else is, and the
// broker queue is empty.
func TestDeadLetterStoreUnderFaults(t *testing.T) {
	servicesSteady(t)
	bin := dlServiceBinary(t)
	for _, driver := range []string{"postgres", "mysql", "sqlite"} {
		t.Run(driver, func(t *testing.T) {
			if !full() {
				t.Parallel()
			}
			testDeadLetterFaults(t, bin, driver)
		})
	}
}

func testDeadLetterFaults(t *testing.T, bin, driver string) {
	n := 2000
	if full() {
		n = 5000
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	suffix := testenv.Suffix()
	r := &dlRun{t: t, driver: driver, prefix: "dlf_" + suffix + "_"}
	var dbURL string
	switch driver {
	case "postgres":
		base := testenv.PostgresURL(t)
		appName := "dlf_" + suffix
		dbURL = withQuery(base, "application_name="+appName)
		db, err := sql.Open("pgx", base)
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(2)
		r.db, r.table = db, `"`+r.prefix+`dead_letters"`
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var names []string
			rows, err := db.QueryContext(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND starts_with(table_name, $1)`, r.prefix)
			if err == nil {
				for rows.Next() {
					var s string
					_ = rows.Scan(&s)
					names = append(names, `"`+s+`"`)
				}
				rows.Close()
			}
			if len(names) > 0 {
				if _, err := db.ExecContext(ctx, `DROP TABLE IF EXISTS `+strings.Join(names, ", ")); err != nil {
					t.Errorf("drop %v: %v", names, err)
				}
			}
			// The migration bookkeeping rows of the run's components
			// ("deadletter:dlf_..._dead_letters", ...).
			if _, err := db.ExecContext(ctx, `DELETE FROM `+store.MigrationTable+` WHERE strpos(component, ':'||$1) > 0`, r.prefix); err != nil {
				t.Errorf("delete the run's migration rows: %v", err)
			}
			_ = db.Close()
		})
		r.killConns = func() (int, error) {
			var k int
			err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1) x`, appName).Scan(&k)
			return k, err
		}
		if full() {
			r.restartDB = func() error {
				_, err := runCmd(90*time.Second, pgRestartCmd+" && pg_isready -h 127.0.0.1 -t 30")
				if err != nil {
					_, _ = runCmd(60*time.Second, testenv.StartPostgres+" || true; pg_isready -h 127.0.0.1 -t 30")
				}
				return err
			}
		}
	case "mysql":
		base := testenv.MySQLURL(t)
		drv, err := mysql.Open(ctx, base)
		if err != nil {
			t.Fatal(err)
		}
		db := drv.DB()
		database := "dlf_" + suffix
		if _, err := db.ExecContext(ctx, "CREATE DATABASE `"+database+"`"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+database+"`"); err != nil {
				t.Errorf("drop database %s: %v", database, err)
			}
			_ = drv.Close()
		})
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/" + database
		dbURL = u.String()
		r.db, r.table = db, "`"+database+"`.`"+r.prefix+"dead_letters`"
		// The test's own connections use another database, so only the
		// consumer's are killed.
		r.killConns = func() (int, error) {
			rows, err := db.QueryContext(ctx, `SELECT id FROM information_schema.processlist WHERE db = ?`, database)
			if err != nil {
				return 0, err
			}
			var ids []int64
			for rows.Next() {
				var id int64
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return 0, err
				}
				ids = append(ids, id)
			}
			rows.Close()
			k := 0
			for _, id := range ids {
				if _, err := db.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", id)); err == nil {
					k++
				}
			}
			return k, nil
		}
		if full() {
			r.restartDB = func() error {
				_, err := runCmd(90*time.Second, mariaDBStop+" && "+mariaDBStartCmd)
				if err != nil {
					_, _ = runCmd(60*time.Second, testenv.StartMariaDB)
				}
				return err
			}
		}
	case "sqlite":
		dbURL = "sqlite://" + filepath.Join(dir, "dl.db")
		drv, err := sqlite.Open(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = drv.Close() })
		r.db, r.table = drv.DB(), `"`+r.prefix+`dead_letters"`
	}

	transport := testenv.AMQPGroupURL(t, "dlf")
	tu, _ := url.Parse(transport)
	group := tu.Query().Get("group")
	topic := "dlf." + suffix
	t.Cleanup(func() {
		if err := testenv.DeleteAMQPExchanges(transport, suffix); err != nil {
			t.Errorf("remove the exchanges of %s: %v", topic, err)
		}
	})
	r.consumer = newProc(t, dir, "dlservice-"+driver, bin,
		"-db", dbURL, "-transport", transport, "-topic", topic, "-prefix", r.prefix, "-group", group)
	r.consumer.start()
	if err := r.consumer.waitLog("dlservice running", 1, 90*time.Second); err != nil {
		t.Fatal(err)
	}

	// The producer: N messages with recorded ids, published in batches.
	tr, err := adapters.Open(ctx, transport)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tr.Close() }()
	payloads := make(map[string]string, n)
	ids := make([]string, 0, n)
	for i := range n {
		id := fmt.Sprintf("dlf-%s-%05d", suffix, i)
		ids = append(ids, id)
		payloads[id] = fmt.Sprintf(`{"n":%d}`, i)
	}
	produced := make(chan error, 1)
	go func() {
		const batch = 50
		for i := 0; i < n; i += batch {
			var msgs []*message.Message
			for _, id := range ids[i:min(i+batch, n)] {
				m := message.NewMessage(id, []byte(payloads[id]))
				m.Metadata.Set(router.KeyID, id)
				msgs = append(msgs, m)
			}
			if err := tr.Publisher.Publish(topic, msgs...); err != nil {
				produced <- err
				return
			}
			time.Sleep(10 * time.Millisecond) // about 5,000 messages/s: the stream outlasts the first faults
		}
		produced <- nil
	}()

	// The faults, at thresholds of the table's row count, so they land
	// mid-stream whatever the speed of the machine.
	type step struct {
		at int
		do func()
	}
	kill := func() {
		r.consumer.kill()
		r.fault("SIGKILL consumer")
		r.consumer.start()
	}
	conns := func() {
		if r.killConns == nil {
			return
		}
		k, err := r.killConns()
		if err != nil {
			t.Errorf("kill connections: %v", err)
		}
		r.fault(fmt.Sprintf("killed %d database connection(s)", k))
	}
	restart := func() {
		if r.restartDB == nil {
			return
		}
		began := time.Now()
		if err := r.restartDB(); err != nil {
			t.Errorf("database restart: %v", err)
		}
		r.fault(fmt.Sprintf("database restart (%s)", time.Since(began).Round(time.Millisecond)))
	}
	steps := []step{{n / 10, kill}, {n / 5, conns}, {n * 3 / 10, kill}, {n * 2 / 5, conns}, {n / 2, restart},
		{n * 3 / 5, kill}, {n * 7 / 10, conns}, {n * 4 / 5, kill}, {n * 9 / 10, restart}}
	start := time.Now()
	var last int
	changed := time.Now()
	for len(steps) > 0 || last < n {
		if ctx.Err() != nil {
			t.Fatalf("%s: %d of %d dead letters stored after %s; consumer log:\n%s", driver, last, n, time.Since(start), r.consumer.tail(30))
		}
		c, err := r.total(ctx)
		if err == nil && c != last {
			last, changed = c, time.Now()
		}
		// Stalled: no new row for 15 s. Reconcile now, so the report says
		// which messages are missing.
		if time.Since(changed) > 15*time.Second {
			t.Errorf("%s: no new dead letter for 15 s at %d of %d; consumer log:\n%s", driver, last, n, r.consumer.tail(10))
			break
		}
		for len(steps) > 0 && last >= steps[0].at {
			steps[0].do()
			steps = steps[1:]
		}
		// A consumer that died by itself (a fault it could not survive)
		// is restarted and counted.
		if gone, how := r.consumer.exited(); gone {
			r.fault("consumer exited by itself (" + how + "); restarted. Log tail:\n" + r.consumer.tail(10))
			r.consumer.start()
		}
		if len(steps) == 0 && last >= n {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := <-produced; err != nil {
		t.Fatalf("producer: %v", err)
	}
	elapsed := time.Since(start)
	// Let anything in flight land (a duplicate would show up now), then
	// stop the consumer so its unacked messages go back to the queue.
	time.Sleep(time.Second)
	r.consumer.stop()

	got, wrong, err := r.counts(ctx, topic, payloads)
	if err != nil {
		t.Fatal(err)
	}
	var missing, doubled, phantom []string
	rowsTotal := 0
	for id, c := range got {
		rowsTotal += c
		if _, ok := payloads[id]; !ok {
			phantom = append(phantom, id)
		} else if c > 1 {
			doubled = append(doubled, fmt.Sprintf("%s x%d", id, c))
		}
	}
	for _, id := range ids {
		if got[id] == 0 {
			missing = append(missing, id)
		}
	}
	// How often the handler ran per message (dlservice prints one line per
	// call): the messages redelivered after a kill or a failed write.
	calls := map[string]int{}
	if b, err := os.ReadFile(r.consumer.log); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if id, ok := strings.CutPrefix(line, "handled "); ok {
				calls[id]++
			}
		}
	}
	redelivered := 0
	for _, id := range ids {
		if calls[id] > 1 {
			redelivered++
		}
	}
	ready, dlq := queueDepth(t, transport, amqpadapter.QueueName(topic, group)), queueDepth(t, transport, amqpadapter.QueueName(topic+".dlq", group))
	r.mu.Lock()
	faults := append([]string(nil), r.faults...)
	r.mu.Unlock()
	t.Logf("%s: produced %d, dead-letter rows %d, distinct ids %d, missing %d, doubled %d, phantom %d, wrong rows %d, left on the queue %d, on the broker DLQ %d; handled more than once %d; consumer runs %d; %d faults in %s: %s",
		driver, n, rowsTotal, len(got), len(missing), len(doubled), len(phantom), len(wrong), ready, dlq, redelivered, r.consumer.runs, len(faults), elapsed.Round(time.Millisecond), strings.Join(faults, "; "))
	if len(missing) > 0 || len(doubled) > 0 || len(phantom) > 0 || len(wrong) > 0 || rowsTotal != n {
		t.Errorf("%s: dead letters lost or doubled: missing %v, doubled %v, phantom %v, wrong %v", driver,
			head(missing), head(doubled), head(phantom), head(wrong))
	}
	if ready != 0 {
		t.Errorf("%s: %d message(s) left on the queue", driver, ready)
	}
	if dlq > 0 {
		t.Errorf("%s: %d message(s) on the broker DLQ although the App has a store", driver, dlq)
	}
	kills := 0
	for _, f := range faults {
		if f == "SIGKILL consumer" {
			kills++
		}
	}
	if kills < 4 {
		t.Errorf("%s: only %d consumer kills happened", driver, kills)
	}
}

func head(s []string) []string {
	if len(s) > 5 {
		return s[:5]
	}
	return s
}

// queueDepth returns the messages ready on a RabbitMQ queue (0 when the
// queue does not exist).
func queueDepth(t *testing.T, transport, queue string) int {
	t.Helper()
	u, err := url.Parse(transport)
	if err != nil {
		t.Fatal(err)
	}
	u.RawQuery = ""
	conn, err := amqp091.Dial(u.String())
	if err != nil {
		t.Fatalf("RabbitMQ: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		var ae *amqp091.Error
		if errors.As(err, &ae) && ae.Code == amqp091.NotFound {
			return 0
		}
		t.Fatalf("RabbitMQ: inspect %s: %v", queue, err)
	}
	return q.Messages
}

// dlServiceBinary builds e2e/cmd/dlservice into a directory of the test.
func dlServiceBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "dlservice")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/dlservice").CombinedOutput(); err != nil {
		t.Fatalf("go build ./e2e/cmd/dlservice: %v\n%s", err, out)
	}
	return bin
}
