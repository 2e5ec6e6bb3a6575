package outbox_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/store/postgres"
)

func TestBadTableNamesRefusedBeforeAnySQL(t *testing.T) {
	// A pool on a closed port: any SQL would fail with a connection error,
	// so an "invalid SQL name" error proves no SQL ran.
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	pub := gochannel.NewGoChannel(gochannel.Config{}, nil)
	bad := []string{"outbox; DROP TABLE users", `x"y`, "Outbox", "a.b.c", "", "1abc", "a b",
		strings.Repeat("a", 60)} // too long for the derived _dead table
	for _, name := range bad {
		if _, err := outbox.New(postgres.New(pool), outbox.WithTable(name)); err == nil || !strings.Contains(err.Error(), "WithTable") {
			t.Errorf("New(%q) = %v", name, err)
		}
		if _, err := outbox.NewRelay(postgres.New(pool), pub, outbox.WithTable(name)); err == nil {
			t.Errorf("NewRelay(%q) accepted", name)
		}
		if err := outbox.Migrate(context.Background(), postgres.New(pool), outbox.WithTable(name)); err == nil || strings.Contains(err.Error(), "connect") {
			t.Errorf("Migrate(%q) = %v", name, err)
		}
		if name == strings.Repeat("a", 60) {
			continue // fine for an inbox
		}
		if _, err := outbox.NewInbox(postgres.New(pool), outbox.WithInboxTable(name)); err == nil || !strings.Contains(err.Error(), "WithInboxTable") {
			t.Errorf("NewInbox(%q) = %v", name, err)
		}
	}
	for _, bad := range []outbox.RelayOption{outbox.WithBatchSize(0), outbox.WithWorkers(0), outbox.WithLease(time.Millisecond),
		outbox.WithBackoff(time.Second, time.Millisecond), outbox.WithMaxAttempts(0)} {
		if _, err := outbox.NewRelay(postgres.New(pool), pub, bad); err == nil {
			t.Errorf("NewRelay accepted a bad option %#v", bad)
		}
	}
}

func TestConcurrentMigrateIsSafe(t *testing.T) {
	pool := testenv.Postgres(t)
	ctx := context.Background()
	schema := "ob_schema_" + testenv.Suffix()
	table := schema + ".events"
	t.Cleanup(func() {
		_, _ = pool.Exec(ctx, `DROP SCHEMA IF EXISTS `+schema+` CASCADE`)
		_, _ = pool.Exec(ctx, `DELETE FROM hexeract_schema_migrations WHERE component = $1`, "outbox:"+table)
	})
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = outbox.Migrate(ctx, postgres.New(pool), outbox.WithTable(table)) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("migrator %d: %v", i, err)
		}
	}
	ob, err := outbox.New(postgres.New(pool), outbox.WithTable(table))
	if err != nil {
		t.Fatal(err)
	}
	st, err := ob.SchemaStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) == 0 || st[0].Pending() || st[0].Component != "outbox:"+table {
		t.Fatalf("schema status %+v", st)
	}
	var applied int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM hexeract_schema_migrations WHERE component = $1`, "outbox:"+table).Scan(&applied)
	if applied != len(st) {
		t.Fatalf("%d migrations recorded, want %d", applied, len(st))
	}
	publishN(t, pool, ob, 3, 3)
	if s := pending(t, ob); s.Pending != 3 || s.Table != table {
		t.Fatalf("stats %+v", s)
	}
}
