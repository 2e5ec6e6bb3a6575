// Package testenv gives tests the addresses of the services on the machine
// (PostgreSQL, MariaDB, RabbitMQ, NATS, Redis), an in-process Kafka cluster,
// and provisions what the tests need beyond the machine's services: the SQS
// emulator (SQSURL) and Node packages (NodeModules). Every address can be
// overridden by an environment variable. A test whose service is unreachable
// fails, naming the service and the command that starts it (or what is
// missing); it never skips.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Default service addresses, each overridable by the environment variable
// named beside it.
const (
	DefaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable" // HEXERACT_TEST_POSTGRES
	DefaultMySQL    = "mysql://root@127.0.0.1:3306/test"                        // HEXERACT_TEST_MYSQL
	DefaultAMQP     = "amqp://guest:guest@127.0.0.1:5672/"                      // HEXERACT_TEST_AMQP
	DefaultNATS     = "nats://127.0.0.1:4222"                                   // HEXERACT_TEST_NATS
	DefaultRedis    = "redis://127.0.0.1:6379/0"                                // HEXERACT_TEST_REDIS
)

// Start commands printed when a service is down.
const (
	StartPostgres = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
	StartMariaDB  = "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"
	StartRabbitMQ = "rabbitmq-server -detached"
	StartNATS     = "start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log"
	StartRedis    = "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log"
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Suffix returns a random 8-hex-digit suffix for per-test table, topic and
// queue names.
func Suffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// PostgresURL returns the PostgreSQL URL for tests, after checking that the
// server accepts connections.
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := env("HEXERACT_TEST_POSTGRES", DefaultPostgres)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, u)
	if err == nil {
		err = pool.Ping(ctx)
		pool.Close()
	}
	if err != nil {
		t.Fatalf("PostgreSQL is not reachable at HEXERACT_TEST_POSTGRES (%s): %v\nstart it with: %s", Redact(u), err, StartPostgres)
	}
	return u
}

// Postgres returns a pgx pool on the test database, closed when the test ends.
func Postgres(t testing.TB) *pgxpool.Pool {
	t.Helper()
	u := PostgresURL(t)
	pool, err := pgxpool.New(context.Background(), u)
	if err != nil {
		t.Fatalf("PostgreSQL pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// MySQLURL returns the MySQL/MariaDB URL for tests (mysql://user[:password]@host:port/database),
// after checking its port answers.
func MySQLURL(t testing.TB) string {
	t.Helper()
	u := env("HEXERACT_TEST_MYSQL", DefaultMySQL)
	dial(t, "MariaDB", "HEXERACT_TEST_MYSQL", u, "3306", StartMariaDB)
	return u
}

// AMQPURL returns the RabbitMQ URL for tests, after checking its port answers.
func AMQPURL(t testing.TB) string {
	t.Helper()
	u := env("HEXERACT_TEST_AMQP", DefaultAMQP)
	dial(t, "RabbitMQ", "HEXERACT_TEST_AMQP", u, "5672", StartRabbitMQ)
	return u
}

// NATSURL returns the NATS URL for tests, after checking its port answers.
func NATSURL(t testing.TB) string {
	t.Helper()
	u := env("HEXERACT_TEST_NATS", DefaultNATS)
	dial(t, "NATS", "HEXERACT_TEST_NATS", u, "4222", StartNATS)
	return u
}

// RedisURL returns the Redis URL for tests, after checking its port answers.
func RedisURL(t testing.TB) string {
	t.Helper()
	u := env("HEXERACT_TEST_REDIS", DefaultRedis)
	dial(t, "Redis", "HEXERACT_TEST_REDIS", u, "6379", StartRedis)
	return u
}

func dial(t testing.TB, service, envName, rawURL, defPort, start string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("%s: bad %s: %v", service, envName, err)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), defPort)
	}
	conn, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		t.Fatalf("%s is not reachable at %s (%s): %v\nstart it with: %s", service, envName, Redact(rawURL), err, start)
	}
	_ = conn.Close()
}

// Kafka starts an in-process Kafka cluster (kfake) on loopback and returns
// its seed broker addresses. The cluster is shut down when the test ends.
func Kafka(t testing.TB, opts ...kfake.Opt) []string {
	t.Helper()
	opts = append([]kfake.Opt{kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(1)}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("kfake cluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// Redact returns rawURL with any password replaced by "xxxxx", for messages.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// ListenPIDs returns the PostgreSQL backend pids LISTENing on channel
// (their query is `LISTEN "<channel>"`), for tests that kill a component's
// notification connection.
func ListenPIDs(t testing.TB, pool *pgxpool.Pool, channel string) []int32 {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT pid FROM pg_stat_activity WHERE query = $1`, `LISTEN "`+channel+`"`)
	if err != nil {
		t.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	return pids
}
