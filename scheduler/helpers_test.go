package scheduler_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/postgres"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/scheduler"
)

type reminder struct {
	N int `json:"n"`
}

func (reminder) MessageType() string { return "test.reminder" }

// tableSink is a Sink writing every handed-off message into a table of the
// test, in the scheduler's hand-off transaction, so the test can count
// deliveries exactly (no primary key: duplicates would show).
type tableSink struct {
	pool  *pgxpool.Pool
	table string
}

func newTableSink(t testing.TB, pool *pgxpool.Pool) *tableSink {
	t.Helper()
	s := &tableSink{pool: pool, table: "sched_delivered_" + testenv.Suffix()}
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE TABLE `+s.table+` (
		uuid text NOT NULL, topic text NOT NULL, ce_type text NOT NULL, due_at timestamptz NOT NULL,
		delivered_at timestamptz NOT NULL DEFAULT clock_timestamp())`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+s.table) })
	return s
}

func (s *tableSink) PublishMessagesWith(ctx context.Context, ex store.Executor, topic string, msgs ...*message.Message) error {
	tx, ok := postgres.New(s.pool).TxOf(ex)
	if !ok {
		return errors.New("tableSink: not a PostgreSQL transaction")
	}
	rows := make([][]any, len(msgs))
	for i, m := range msgs {
		due, err := time.Parse(time.RFC3339Nano, m.Metadata.Get(router.KeyDueAt))
		if err != nil {
			due, err = time.Parse(time.RFC3339Nano, m.Metadata.Get(router.KeyCronTick))
		}
		if err != nil {
			return err
		}
		rows[i] = []any{m.UUID, topic, m.Metadata.Get("ce_type"), due}
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{s.table}, []string{"uuid", "topic", "ce_type", "due_at"}, pgx.CopyFromRows(rows))
	return err
}

func (s *tableSink) count(t testing.TB) (total, distinct int) {
	t.Helper()
	err := s.pool.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT uuid) FROM `+s.table).Scan(&total, &distinct)
	if err != nil {
		t.Fatal(err)
	}
	return total, distinct
}

type delivery struct {
	UUID        string
	DueAt       time.Time
	DeliveredAt time.Time
}

func (s *tableSink) deliveries(t testing.TB) map[string]delivery {
	t.Helper()
	rows, err := s.pool.Query(context.Background(), `SELECT uuid, due_at, delivered_at FROM `+s.table)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]delivery{}
	for rows.Next() {
		var d delivery
		if err := rows.Scan(&d.UUID, &d.DueAt, &d.DeliveredAt); err != nil {
			t.Fatal(err)
		}
		if _, dup := out[d.UUID]; dup {
			t.Fatalf("message %s delivered twice", d.UUID)
		}
		out[d.UUID] = d
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitCount polls until the sink holds want rows or the deadline passes.
func (s *tableSink) waitCount(t testing.TB, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		total, _ := s.count(t)
		if total >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink holds %d messages after %s, want %d", total, within, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newScheduler builds a scheduler on a fresh table (dropped when the test ends).
func newScheduler(t testing.TB, pool *pgxpool.Pool, sink scheduler.Sink, table string, opts ...scheduler.Option) *scheduler.Scheduler[pgx.Tx] {
	t.Helper()
	if table == "" {
		table = "sched_" + testenv.Suffix()
		t.Cleanup(func() { dropTables(pool, table) })
	}
	s, err := scheduler.New(postgres.New(pool), sink, append([]scheduler.Option{scheduler.WithTable(table), scheduler.WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func dropTables(pool *pgxpool.Pool, table string) {
	ctx := context.Background()
	_, _ = pool.Exec(ctx, `DROP TABLE IF EXISTS `+table+`, `+table+`_ticks, `+table+`_leases`)
	_, _ = pool.Exec(ctx, `DELETE FROM `+store.MigrationTable+` WHERE component = $1`, "scheduler:"+table)
}

// run starts s.Run in the background; the returned stop cancels it and waits.
func run(t testing.TB, s *scheduler.Scheduler[pgx.Tx]) (stop func()) {
	t.Helper()
	return testenv.Run(t, "scheduler", 10*time.Second, s.Run)
}
