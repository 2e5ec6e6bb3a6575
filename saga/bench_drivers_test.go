package saga

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/mysql"
	"github.com/hexeract/hexeract/store/postgres"
	"github.com/hexeract/hexeract/store/sqlite"
)

// rowOutbox is the outbox of the per-driver benchmark: one INSERT per
// message into a table of its own, in the transition's transaction
// (through the driver's TxOf), which is the write an outbox makes.
type rowOutbox[TTx any] struct {
	d     store.Driver[TTx]
	exec  func(ctx context.Context, tx TTx, sql string, args ...any) error
	table string
}

func (o *rowOutbox[TTx]) PublishMessagesWith(ctx context.Context, ex store.Executor, topic string, msgs ...*message.Message) error {
	tx, ok := o.d.TxOf(ex)
	if !ok {
		return errors.New("bench outbox: not a transaction of the driver")
	}
	for _, m := range msgs {
		if err := o.exec(ctx, tx, ph(o.d, `INSERT INTO `+o.table+` (id, topic, payload) VALUES (?, ?, ?)`), m.UUID, topic, string(m.Payload)); err != nil {
			return err
		}
	}
	return nil
}

func (o *rowOutbox[TTx]) Signal() {}

// ph turns ? placeholders into $n for PostgreSQL.
func ph(d store.Store, q string) string {
	if d.Dialect() != store.Postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// BenchmarkTransitionDrivers gives, for each driver (PostgreSQL, MariaDB,
// SQLite), the saga transition rate beside the rate of raw one-row
// optimistic updates on the same database (BEGIN; SELECT version; UPDATE
// ... WHERE version = <read>; COMMIT), interleaved in rounds as in
// BenchmarkTransitionVsRaw. A transition loads the instance, runs the
// handler, writes one message row through the outbox interface in the
// transaction and saves the state with its version check and its history
// entry. 8 goroutines, each on its own instance and its own raw row.
//
//	go test -run '^$' -bench 'BenchmarkTransitionDrivers' ./saga/
func BenchmarkTransitionDrivers(b *testing.B) {
	pgExec := func(ctx context.Context, tx pgx.Tx, q string, args ...any) error {
		_, err := tx.Exec(ctx, q, args...)
		return err
	}
	pgInt := func(ctx context.Context, tx pgx.Tx, q string, args ...any) (n int64, err error) {
		err = tx.QueryRow(ctx, q, args...).Scan(&n)
		return n, err
	}
	sqlExec := func(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	}
	sqlInt := func(ctx context.Context, tx *sql.Tx, q string, args ...any) (n int64, err error) {
		err = tx.QueryRowContext(ctx, q, args...).Scan(&n)
		return n, err
	}
	b.Run("postgres", func(b *testing.B) {
		admin := testenv.Postgres(b)
		schema := "hx_bench_" + testenv.Suffix()
		if _, err := admin.Exec(context.Background(), "CREATE SCHEMA "+schema); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })
		d, err := postgres.Open(context.Background(), testenv.PostgresURL(b)+"&search_path="+schema+"&pool_max_conns=16")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = d.Close() })
		benchDriver(b, d, pgExec, pgInt)
	})
	b.Run("mariadb", func(b *testing.B) {
		admin, err := mysql.Open(context.Background(), testenv.MySQLURL(b))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = admin.Close() })
		name := "hx_bench_" + testenv.Suffix()
		if _, err := admin.DB().Exec("CREATE DATABASE " + name); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _, _ = admin.DB().Exec("DROP DATABASE IF EXISTS " + name) })
		u, err := url.Parse(testenv.MySQLURL(b))
		if err != nil {
			b.Fatal(err)
		}
		u.Path = "/" + name
		d, err := mysql.Open(context.Background(), u.String())
		if err != nil {
			b.Fatal(err)
		}
		d.DB().SetMaxOpenConns(16)
		d.DB().SetMaxIdleConns(16)
		b.Cleanup(func() { _ = d.Close() })
		benchDriver(b, d, sqlExec, sqlInt)
	})
	b.Run("sqlite", func(b *testing.B) {
		d, err := sqlite.Open(context.Background(), "sqlite://"+filepath.Join(b.TempDir(), "bench.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = d.Close() })
		benchDriver(b, d, sqlExec, sqlInt)
	})
}

func benchDriver[TTx any](b *testing.B, d store.Driver[TTx], exec func(context.Context, TTx, string, ...any) error,
	queryInt func(context.Context, TTx, string, ...any) (int64, error)) {
	ctx := context.Background()
	workers := benchParallelism * goruntime.GOMAXPROCS(0)
	if _, err := d.Migrate(ctx, "saga_bench", []store.Migration{
		{Version: 1, Name: "raw", SQL: `CREATE TABLE saga_bench_raw (id INTEGER PRIMARY KEY, version BIGINT NOT NULL, payload TEXT NOT NULL)`},
		{Version: 2, Name: "outbox", SQL: `CREATE TABLE saga_bench_out (id VARCHAR(64) PRIMARY KEY, topic VARCHAR(255) NOT NULL, payload TEXT NOT NULL)`},
	}); err != nil {
		b.Fatal(err)
	}
	for w := range workers {
		if err := d.InTx(ctx, func(ctx context.Context, tx TTx) error {
			return exec(ctx, tx, ph(d, `INSERT INTO saga_bench_raw (id, version, payload) VALUES (?, 0, '{}')`), w)
		}); err != nil {
			b.Fatal(err)
		}
	}
	st, err := NewSQLStore(d, WithTable("saga_bench"))
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	app, err := hexeract.New()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = app.Close() })
	def := Define[benchState]("bench")
	StartedBy(def, func(e benchStarted) string { return e.ID },
		func(c *Context[benchState], s *benchState, e benchStarted) error { return nil })
	Handles(def, func(e benchEvent) string { return e.ID }, benchHandler)
	rt, err := register(app, def, st, WithOutbox(&rowOutbox[TTx]{d: d, exec: exec, table: "saga_bench_out"}))
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]string, workers)
	for i := range keys {
		keys[i] = fmt.Sprint("i-", i)
		if err := rt.runPhase(ctx, keys[i], "bench.started", true, phaseEvent, nil,
			func(c *Context[benchState], s *benchState) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	rawUpdate := func(w int) error {
		return d.InTx(ctx, func(ctx context.Context, tx TTx) error {
			v, err := queryInt(ctx, tx, ph(d, `SELECT version FROM saga_bench_raw WHERE id = ?`), w)
			if err != nil {
				return err
			}
			return exec(ctx, tx, ph(d, `UPDATE saga_bench_raw SET version = version + 1, payload = ? WHERE id = ? AND version = ?`),
				fmt.Sprintf(`{"count":%d}`, v+1), w, v)
		})
	}
	const batch = 25
	phase := func(op func(w, i int) error) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range batch {
					if err := op(w, i); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	var rawTime, sagaTime time.Duration
	b.ResetTimer()
	for done := 0; done < b.N; done += workers * batch {
		rawTime += phase(func(w, _ int) error { return rawUpdate(w) })
		sagaTime += phase(func(w, i int) error { return transition(ctx, rt, keys[w], i) })
	}
	b.StopTimer()
	ops := float64((b.N + workers*batch - 1) / (workers * batch) * workers * batch)
	b.ReportMetric(ops/rawTime.Seconds(), "raw_updates/s")
	b.ReportMetric(ops/sagaTime.Seconds(), "transitions/s")
	b.ReportMetric(100*rawTime.Seconds()/sagaTime.Seconds(), "pct_of_raw")
}
