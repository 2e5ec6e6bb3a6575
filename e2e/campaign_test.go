package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/mysql"
	"github.com/hexeract/hexeract/store/sqlite"
)

// testPassword is put in every DSN the processes get (PostgreSQL accepts
// it under trust authentication); no log line, error or CLI output may
// contain it. See TestNoPasswordInOutput.
const testPassword = "Hx3e2eS3cretPw9q"

// full reports whether the full campaign was asked for.
func full() bool { return os.Getenv("HEXERACT_E2E_FULL") == "1" }

// plan is the shape of one campaign run.
type plan struct {
	transactions  int           // producer transactions
	rate          int           // producer transactions per second
	kills         int           // rounds of SIGKILL (relay and consumer)
	terminates    int           // cut connections: pg_terminate_backend of the consumer's (PostgreSQL), KILL of the service's (MariaDB)
	pgRestart     bool          // restart the database server: PostgreSQL or MariaDB (full only)
	brokerRestart bool          // restart the broker (full only, where possible)
	drain         time.Duration // time allowed to deliver everything after the producer ends
	consumerKills int           // SIGKILLs of the consumer (<= kills)
}

func shortPlan() plan {
	return plan{transactions: 1200, rate: 120, kills: 5, consumerKills: 5, terminates: 2, drain: 60 * time.Second}
}

func fullPlan() plan {
	return plan{transactions: 9000, rate: 150, kills: 5, consumerKills: 5, terminates: 3, pgRestart: true, brokerRestart: true, drain: 3 * time.Minute}
}

// TestCampaign runs the fault campaign with the store on PostgreSQL on
// RabbitMQ, NATS JetStream, Kafka (kfake), Redis Streams and the PostgreSQL
// bus, and on RabbitMQ with the store on MariaDB (mariadb_amqp) and on
// SQLite (sqlite_amqp): in parallel in the short form and one after the
// other in the full form (whose restarts affect the whole machine).
func TestCampaign(t *testing.T) {
	servicesSteady(t)
	bin := serviceBinary(t)
	pgURL := withPassword(t, testenv.PostgresURL(t))
	p := shortPlan()
	mode := "short"
	if full() {
		p = fullPlan()
		mode = "full"
	}
	var mu sync.Mutex
	var reports []*report
	transports := []struct {
		name string
		url  func(t *testing.T) string
		// restart restarts the broker; nil when it cannot be restarted.
		restart func(t *testing.T) error
		// store is the service's database: store.Postgres when empty.
		store store.Dialect
	}{
		{"amqp", func(t *testing.T) string { return testenv.AMQPURL(t) }, restartRabbitMQ, ""},
		{"nats", func(t *testing.T) string { return natsURL(t) }, restartNATS, ""},
		{"kafka", func(t *testing.T) string { return "kafka://" + strings.Join(testenv.Kafka(t), ",") + "/" }, nil, ""},
		// Redis Streams: a killed consumer's pending messages are claimed
		// by the group after max_idle (default 60 s); shortened like NATS's
		// ack_wait.
		{"redis", func(t *testing.T) string { return withQuery(testenv.RedisURL(t), "max_idle=3s&claim_interval=500ms") }, nil, ""},
		// PostgreSQL as the bus too (the outbox relays into it): a killed
		// consumer's messages come back after ack_deadline (default 30 s).
		{"postgres", func(t *testing.T) string {
			return withQuery(withPassword(t, testenv.PostgresURL(t)), "ack_deadline=3s&table_prefix={prefix}_bus_")
		}, nil, ""},
		// The store on MariaDB (a database and a user per run) and on
		// SQLite (one file shared by the processes), the bus on RabbitMQ.
		{"mariadb_amqp", func(t *testing.T) string { return testenv.AMQPURL(t) }, restartRabbitMQ, store.MySQL},
		{"sqlite_amqp", func(t *testing.T) string { return testenv.AMQPURL(t) }, restartRabbitMQ, store.SQLite},
	}
	start := time.Now()
	t.Run("transports", func(t *testing.T) {
		for _, tr := range transports {
			t.Run(tr.name, func(t *testing.T) {
				if !full() {
					t.Parallel()
				}
				pl := p
				if tr.name == "kafka" {
					// Known gap (docs/reliability.md): after a SIGKILL of the
					// consumer, the Kafka consumer group (one group shared
					// by every handler of the App) stalls for over a minute
					// on kfake, so the Kafka campaign kills only the relay
					// unless HEXERACT_E2E_KAFKA_CONSUMER_KILLS says otherwise.
					pl.consumerKills = 0
					if v := os.Getenv("HEXERACT_E2E_KAFKA_CONSUMER_KILLS"); v != "" {
						pl.consumerKills, _ = strconv.Atoi(v)
					}
				}
				if tr.restart == nil {
					pl.brokerRestart = false
				}
				st := tr.store
				if st == "" {
					st = store.Postgres
				}
				if st == store.SQLite {
					// No server: no connection to cut, no restart.
					pl.terminates, pl.pgRestart = 0, false
				}
				c := &campaign{t: t, name: tr.name, bin: bin, store: st, db: pgURL, transport: tr.url(t), plan: pl, restart: tr.restart}
				r := c.run()
				mu.Lock()
				reports = append(reports, r)
				mu.Unlock()
			})
		}
	})
	var b strings.Builder
	fmt.Fprintf(&b, "Hexeract end-to-end campaign (%s), %s, took %s\n", mode, time.Now().UTC().Format(time.RFC3339), time.Since(start).Round(time.Second))
	for _, r := range reports {
		b.WriteString(r.String())
	}
	t.Log("\n" + b.String())
	path := os.Getenv("HEXERACT_E2E_REPORT")
	if path == "" {
		path = filepath.Join(os.TempDir(), "hexeract-e2e-report-"+mode+".txt")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Errorf("write report: %v", err)
	} else {
		t.Logf("report written to %s", path)
	}
}

// withPassword returns the PostgreSQL URL with testPassword as password.
func withPassword(t *testing.T, raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	user := "postgres"
	if u.User != nil && u.User.Username() != "" {
		user = u.User.Username()
	}
	u.User = url.UserPassword(user, testPassword)
	return u.String()
}

// withQuery appends query parameters to rawURL.
func withQuery(rawURL, q string) string {
	if strings.Contains(rawURL, "?") {
		return rawURL + "&" + q
	}
	return rawURL + "?" + q
}

// natsURL is the NATS URL with a short ack wait, so messages of a killed
// consumer are redelivered within seconds.
func natsURL(t *testing.T) string {
	u := strings.TrimRight(testenv.NATSURL(t), "/")
	return u + "/?ack_wait=3s"
}

type campaign struct {
	t         *testing.T
	name      string
	bin       string
	store     store.Dialect // the service's database
	db        string        // its URL
	transport string
	plan      plan
	restart   func(t *testing.T) error

	prefix string
	pool   *pgxpool.Pool // PostgreSQL store only
	sqldb  *sql.DB       // the store, for the test's own queries (? placeholders, see query)
	dbUser string        // MariaDB: the run's user, whose connections KILL cuts
	dir    string

	producer, relay, consumer *proc
	faults                    []fault
	selfExits                 int
}

type fault struct {
	kind   string
	at     float64       // database clock, epoch ms: when the fault was injected, or for a restart when the service was back
	outage time.Duration // restarts: how long the stop and start took
}

func (c *campaign) run() *report {
	t := c.t
	c.prefix = "e2e_" + testenv.Suffix() + "_" + c.name
	// Tables the transport creates (PostgreSQL bus) are named after the
	// campaign too, so they are dropped with its own.
	c.transport = strings.ReplaceAll(c.transport, "{prefix}", c.prefix)
	c.dir = t.TempDir()
	c.openStore()
	common := []string{"-db", c.db, "-transport", c.transport, "-prefix", c.prefix}
	setup := newProc(t, c.dir, "setup", c.bin, append([]string{"-role", "setup"}, common...)...)
	setup.start()
	if err := setup.wait(time.Minute); err != nil {
		t.Fatal(err)
	}
	if c.store == store.Postgres {
		t.Cleanup(func() { c.dropTables() })
	}
	c.consumer = newProc(t, c.dir, "consumer", c.bin, append([]string{"-role", "consumer"}, common...)...)
	c.relay = newProc(t, c.dir, "relay", c.bin, append([]string{"-role", "relay", "-batch", "50"}, common...)...)
	// The producer runs at least plan.transactions, and on until the
	// stop file exists: faults wait for the process they hit to be ready
	// again, so on a loaded machine they can outlast the planned production
	// time, and recovery from the last one is measured on traffic after it.
	stopFile := filepath.Join(c.dir, "producer.stop")
	c.producer = newProc(t, c.dir, "producer", c.bin, append([]string{"-role", "producer",
		"-count", strconv.Itoa(c.plan.transactions), "-rate", strconv.Itoa(c.plan.rate), "-until", stopFile}, common...)...)

	c.consumer.start()
	if err := c.consumer.waitLog("consumer ready", 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	c.relay.start()
	if err := c.relay.waitLog("relay running", 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	c.producer.start()

	c.injectFaults()
	// Clean traffic after the last fault, then let the producer finish.
	time.Sleep(cleanTail)
	if err := os.WriteFile(stopFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	if err := c.producer.wait(c.plan.drain + time.Duration(c.plan.transactions/c.plan.rate)*time.Second); err != nil {
		t.Fatal(err)
	}
	drained := c.waitDrained(c.plan.drain)
	c.consumer.stop()
	c.relay.stop()
	r := c.reconcile()
	r.drained = drained
	r.check(t)
	r.logBytes = scanDirForPassword(t, c.dir)
	return r
}

// cleanTail is how long the producer keeps going after the last fault at
// least.
const cleanTail = time.Second

// injectFaults spreads the plan's faults over the producer's run, so
// traffic keeps flowing after the last one and recovery can be measured.
func (c *campaign) injectFaults() {
	t := c.t
	var steps []func()
	for i := range c.plan.kills {
		steps = append(steps, func() { c.kill(c.relay, "relay", "relay running") })
		if i < c.plan.consumerKills {
			steps = append(steps, func() { c.kill(c.consumer, "consumer", "consumer ready") })
		}
		if i < c.plan.terminates {
			steps = append(steps, c.terminate)
		}
	}
	if c.plan.pgRestart {
		steps = append(steps, c.restartDatabase)
	}
	if c.plan.brokerRestart {
		steps = append(steps, func() {
			began := time.Now()
			if err := c.restart(t); err != nil {
				t.Errorf("broker restart: %v", err)
			}
			c.faults = append(c.faults, fault{kind: c.name + " broker restart", at: c.dbNow(), outage: time.Since(began)})
		})
	}
	// Faults start once traffic flows end to end (a Kafka consumer group
	// takes seconds to assign its partitions after the App is running).
	c.waitFlowing(time.Minute)
	// Use the first 70% of the production time, then let it run clean.
	total := time.Duration(c.plan.transactions) * time.Second / time.Duration(c.plan.rate)
	gap := total * 7 / 10 / time.Duration(len(steps)+1)
	for _, step := range steps {
		time.Sleep(gap)
		c.superviseOnce()
		step()
	}
}

// waitFlowing waits until the first effect has been applied.
func (c *campaign) waitFlowing(max time.Duration) {
	deadline := time.Now().Add(max)
	for {
		var n int
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.sqldb.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM `+c.prefix+`_effects LIMIT 1) s`).Scan(&n)
		cancel()
		if err == nil && n > 0 {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no message applied within %s of the producer's start (err %v)\nconsumer log:\n%s", max, err, c.consumer.tail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// superviseOnce restarts a relay or consumer that exited by itself (as a
// process supervisor would) and counts it.
func (c *campaign) superviseOnce() {
	for _, p := range []struct {
		p     *proc
		ready string
	}{{c.relay, "relay running"}, {c.consumer, "consumer ready"}} {
		if gone, how := p.p.exited(); gone {
			c.selfExits++
			c.t.Logf("%s exited by itself (%s); restarting it. Log tail:\n%s", p.p.name, how, p.p.tail(15))
			p.p.start()
		}
	}
}

// dbNow returns the database's clock in epoch milliseconds.
func (c *campaign) dbNow() float64 {
	var now float64
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.sqldb.QueryRowContext(ctx, `SELECT `+c.nowMs()).Scan(&now)
		cancel()
		if err == nil {
			return now
		}
		if i > 100 {
			c.t.Fatalf("database clock: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// nowMs is the SQL expression of the database's clock in epoch
// milliseconds.
func (c *campaign) nowMs() string {
	switch c.store {
	case store.MySQL:
		return `UNIX_TIMESTAMP(SYSDATE(6)) * 1000`
	case store.SQLite:
		return `(julianday('now') - 2440587.5) * 86400000.0`
	}
	return `(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::float8`
}

// ms is the SQL expression of column col (one of the service's at
// columns) in epoch milliseconds.
func (c *campaign) ms(col string) string {
	switch c.store {
	case store.MySQL:
		return `(UNIX_TIMESTAMP(` + col + `) * 1000)`
	case store.SQLite:
		return col // stored in epoch milliseconds
	}
	return `(EXTRACT(EPOCH FROM ` + col + `) * 1000)::float8`
}

// query returns q, written with ? placeholders, as the store wants it.
func (c *campaign) query(q string) string {
	if c.store != store.Postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// openStore opens the campaign's store: the shared PostgreSQL database; a
// database and a user of its own on MariaDB (dropped at the end); a file in
// a temporary directory on SQLite, shared by the processes.
func (c *campaign) openStore() {
	t := c.t
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	switch c.store {
	case store.Postgres:
		c.pool = testenv.Postgres(t)
		c.sqldb = stdlib.OpenDBFromPool(c.pool)
		t.Cleanup(func() { _ = c.sqldb.Close() })
	case store.MySQL:
		root := testenv.MySQLURL(t)
		admin, err := mysql.Open(ctx, root)
		if err != nil {
			t.Fatal(err)
		}
		name := "hx_" + testenv.Suffix()
		user := "'" + name + "'@'127.0.0.1'"
		for _, stmt := range []string{
			`CREATE DATABASE ` + name + ` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`,
			`CREATE USER ` + user + ` IDENTIFIED BY '` + testPassword + `'`,
			`GRANT ALL PRIVILEGES ON ` + name + `.* TO ` + user,
		} {
			if _, err := admin.DB().ExecContext(ctx, stmt); err != nil {
				_ = admin.Close()
				t.Fatalf("MariaDB setup: %v", err)
			}
		}
		t.Cleanup(func() {
			defer func() { _ = admin.Close() }()
			if os.Getenv("HEXERACT_E2E_KEEP") == "1" {
				t.Logf("keeping the MariaDB database %s (user %s)", name, user)
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for _, stmt := range []string{`DROP DATABASE IF EXISTS ` + name, `DROP USER IF EXISTS ` + user} {
				if _, err := admin.DB().ExecContext(ctx, stmt); err != nil {
					t.Errorf("MariaDB cleanup %q: %v", stmt, err)
				}
			}
		})
		u, err := url.Parse(root)
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/" + name
		drv, err := mysql.Open(ctx, u.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = drv.Close() })
		c.sqldb = drv.DB()
		// The processes connect as the run's user, with a password, so the
		// log scan has something to find.
		u.User = url.UserPassword(name, testPassword)
		c.db = u.String()
		c.dbUser = name
	case store.SQLite:
		c.db = "sqlite://" + filepath.Join(t.TempDir(), "e2e.db")
		drv, err := sqlite.Open(ctx, c.db)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = drv.Close() })
		c.sqldb = drv.DB()
	default:
		t.Fatalf("store %q", c.store)
	}
}

func (c *campaign) mark(kind string) {
	c.faults = append(c.faults, fault{kind: kind, at: c.dbNow()})
}

// kill SIGKILLs p (mid-batch: the producer is running) and starts it again.
func (c *campaign) kill(p *proc, what, ready string) {
	c.mark("SIGKILL " + what)
	p.kill()
	p.start()
	if err := p.waitLog(ready, p.runs, time.Minute); err != nil {
		c.t.Error(err)
	}
}

// terminate cuts database connections: the consumer's on PostgreSQL
// (pg_terminate_backend by application_name), every connection of the
// service's processes on MariaDB (KILL of the run's user's rows in
// information_schema.processlist: the producer's, the relay's and the
// consumer's).
func (c *campaign) terminate() {
	at := c.dbNow()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c.store == store.MySQL {
		n, err := c.killMySQL(ctx)
		if err != nil {
			c.t.Errorf("KILL: %v", err)
		}
		c.faults = append(c.faults, fault{kind: fmt.Sprintf("KILL connections (%d)", n), at: at})
		return
	}
	var n int
	err := c.pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`,
		c.prefix+"-consumer").Scan(&n)
	if err != nil {
		c.t.Errorf("pg_terminate_backend: %v", err)
	}
	c.faults = append(c.faults, fault{kind: fmt.Sprintf("pg_terminate_backend consumer (%d)", n), at: at})
}

// killMySQL KILLs the connections of the run's user to the run's database.
func (c *campaign) killMySQL(ctx context.Context) (int, error) {
	rows, err := c.sqldb.QueryContext(ctx, `SELECT id FROM information_schema.processlist WHERE user = ? AND db = DATABASE()`, c.dbUser)
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
	if err := rows.Err(); err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		// A connection may have gone in the meantime: ER_NO_SUCH_THREAD.
		if _, err := c.sqldb.ExecContext(ctx, `KILL CONNECTION `+strconv.FormatInt(id, 10)); err == nil {
			n++
		}
	}
	return n, nil
}

// restartDatabase restarts the store's server: PostgreSQL or MariaDB.
func (c *campaign) restartDatabase() {
	if c.store == store.MySQL {
		c.restartMariaDB()
		return
	}
	c.restartPostgres()
}

const (
	mariaDBUp = "for i in $(seq 600); do mysqladmin -uroot -h127.0.0.1 --connect-timeout=2 ping >/dev/null 2>&1 && exit 0; sleep 0.1; done; exit 1"
	// mariaDBStop sends SIGTERM (a clean shutdown) and waits until the
	// process is gone: mysqladmin shutdown returns while mariadbd is still
	// exiting, and start-stop-daemon --start then finds it "already running".
	mariaDBStop     = "start-stop-daemon --stop --oknodo --retry TERM/60/KILL/5 --exec /usr/sbin/mariadbd"
	mariaDBStartCmd = testenv.StartMariaDB + " && " + mariaDBUp
)

// restartMariaDB stops MariaDB (SIGTERM, waiting until the process is
// gone), starts it as the machine does (start-stop-daemon) and waits until
// it answers.
func (c *campaign) restartMariaDB() {
	t := c.t
	brokerLock(t)
	t.Cleanup(func() {
		if _, err := runCmd(60*time.Second, mariaDBStartCmd); err != nil {
			t.Errorf("restoring MariaDB: %v; start it with: %s", err, testenv.StartMariaDB)
		}
	})
	began := time.Now()
	if _, err := runCmd(90*time.Second, mariaDBStop); err != nil {
		t.Errorf("MariaDB stop: %v", err)
	}
	if _, err := runCmd(90*time.Second, mariaDBStartCmd); err != nil {
		t.Errorf("MariaDB start: %v", err)
	}
	outage := time.Since(began)
	c.sqldb.SetMaxIdleConns(0) // drop the idle connections of the old server
	c.sqldb.SetMaxIdleConns(2)
	c.faults = append(c.faults, fault{kind: "MariaDB restart", at: c.dbNow(), outage: outage})
}

const pgRestartCmd = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main restart"

func (c *campaign) restartPostgres() {
	t := c.t
	brokerLock(t)
	t.Cleanup(func() {
		if _, err := runCmd(60*time.Second, "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start || true; pg_isready -h 127.0.0.1 -t 30"); err != nil {
			t.Errorf("restoring PostgreSQL: %v; start it with: %s", err, testenv.StartPostgres)
		}
	})
	began := time.Now()
	if _, err := runCmd(90*time.Second, pgRestartCmd); err != nil {
		t.Errorf("PostgreSQL restart: %v", err)
	}
	outage := time.Since(began)
	c.pool.Reset()
	c.sqldb.SetMaxIdleConns(0) // drop the idle connections of the old server
	c.sqldb.SetMaxIdleConns(2)
	c.faults = append(c.faults, fault{kind: "PostgreSQL restart", at: c.dbNow(), outage: outage})
}

// waitDrained waits until every committed message has been applied and
// every payment saga has completed; it returns how long that took.
func (c *campaign) waitDrained(max time.Duration) time.Duration {
	start := time.Now()
	deadline := start.Add(max)
	for time.Now().Before(deadline) {
		c.superviseOnce()
		missing, sagas, err := c.pending()
		if err == nil && missing == 0 && sagas == 0 {
			return time.Since(start)
		}
		time.Sleep(250 * time.Millisecond)
	}
	missing, sagas, err := c.pending()
	c.t.Errorf("not drained after %s: %d committed messages not applied, %d sagas not completed (err %v)\nrelay log:\n%s\nconsumer log:\n%s",
		max, missing, sagas, err, c.relay.tail(20), c.consumer.tail(20))
	return time.Since(start)
}

func (c *campaign) pending() (missing, sagas int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := c.prefix
	err = c.sqldb.QueryRowContext(ctx, `SELECT
 (SELECT count(*) FROM `+p+`_committed c WHERE NOT EXISTS (SELECT 1 FROM `+p+`_effects e WHERE e.msg_id = c.msg_id)),
 (SELECT count(*) FROM `+p+`_committed c WHERE c.kind = 'e2e.payment.requested' AND NOT EXISTS
   (SELECT 1 FROM `+p+`_sagas s WHERE s.saga = 'payment' AND s.key = c.order_id AND s.status = 'completed'))`).Scan(&missing, &sagas)
	return
}

func (c *campaign) dropTables() {
	if os.Getenv("HEXERACT_E2E_KEEP") == "1" {
		_, _ = runCmd(5*time.Second, "cp -r "+c.dir+" /tmp/e2e-keep-"+c.name)
		c.t.Logf("keeping the tables %s_* and the logs in /tmp/e2e-keep-%s", c.prefix, c.name)
		return
	}
	dropLike(c.t, c.pool, c.prefix+"_")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, _ = c.pool.Exec(ctx, `DROP FUNCTION IF EXISTS `+c.prefix+`_sagas_save CASCADE`)
	_, _ = c.pool.Exec(ctx, `DELETE FROM hexeract_schema_migrations WHERE component LIKE $1`, "%"+c.prefix+"%")
}
