package scheduler_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/hexeract/hexeract/store/postgres"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/scheduler"
	"github.com/hexeract/hexeract/store"
)

// TestLongSchemaQualifiedTable: a schema-qualified table whose full name is
// longer than PostgreSQL's 63-byte limit on notification channels (each
// part is a valid identifier) schedules and wakes the poller like any other.
// The channel used to be the table name itself: pg_notify refused it
// ("channel name too long"), so every Schedule of a message due soon failed,
// and LISTEN silently truncated it, so no notification arrived.
func TestLongSchemaQualifiedTable(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	ctx := context.Background()
	sfx := testenv.Suffix()
	schema := "billing_and_invoicing_service_" + sfx
	table := schema + ".hexeract_scheduled_payment_reminders_" + sfx
	if len(table) <= 63 {
		t.Fatalf("table name %q is not longer than 63 bytes", table)
	}
	if _, err := pool.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), `DROP SCHEMA `+schema+` CASCADE`)
		_, _ = pool.Exec(context.Background(), `DELETE FROM `+store.MigrationTable+` WHERE component = $1`, "scheduler:"+table)
	})
	sink := newTableSink(t, pool)
	// A poll interval far beyond the deadline below: only the notification
	// can wake the poller in time.
	s, err := scheduler.New(postgres.New(pool), sink, scheduler.WithTable(table), scheduler.WithPollInterval(time.Minute),
		scheduler.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	run(t, s)
	// Wait for the LISTEN to be in place: the poller then sleeps for the
	// poll interval and only the notification wakes it in time.
	testenv.WaitFor(t, 5*time.Second, "the LISTEN connection", func() bool {
		var n int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE query = $1`,
			`LISTEN "`+scheduler.Channel(s)+`"`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n > 0
	})
	if _, err := s.ScheduleWith(ctx, scheduler.Exec(s), time.Now().Add(100*time.Millisecond), reminder{N: 1}); err != nil {
		t.Fatalf("Schedule on %s: %v", table, err)
	}
	sink.waitCount(t, 1, 10*time.Second)
}
