package migrate_test

import (
	"context"
	"sync"
	"testing"

	"github.com/hexeract/hexeract/internal/migrate"
	"github.com/hexeract/hexeract/internal/testenv"
)

func TestConcurrentApplyRunsEachMigrationOnce(t *testing.T) {
	pool := testenv.Postgres(t)
	ctx := context.Background()
	suffix := testenv.Suffix()
	table := "migrate_test_" + suffix
	component := "test:" + suffix
	migrations := []migrate.Migration{
		{Version: 2, Name: "add column", SQL: `ALTER TABLE ` + table + ` ADD COLUMN note text`},
		{Version: 1, Name: "create", SQL: `CREATE TABLE ` + table + ` (id bigint PRIMARY KEY)`},
	}
	t.Cleanup(func() {
		_, _ = pool.Exec(ctx, `DROP TABLE IF EXISTS `+table)
		_, _ = pool.Exec(ctx, `DELETE FROM `+migrate.VersionTable+` WHERE component = $1`, component)
	})

	before, err := migrate.Statuses(ctx, pool, component, migrations)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 2 || !before[0].Pending() || !before[1].Pending() || before[0].Version != 1 {
		t.Fatalf("status before = %+v", before)
	}

	var wg sync.WaitGroup
	results := make([][]int, 8)
	errs := make([]error, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = migrate.Apply(ctx, pool, component, migrations)
		}()
	}
	wg.Wait()
	total := 0
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("migrator %d: %v", i, errs[i])
		}
		total += len(results[i])
	}
	if total != 2 {
		t.Fatalf("8 concurrent migrators applied %d migrations in all, want 2", total)
	}
	after, err := migrate.Statuses(ctx, pool, component, migrations)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range after {
		if s.Pending() {
			t.Fatalf("still pending after Apply: %+v", s)
		}
	}
	if _, err := pool.Exec(ctx, `INSERT INTO `+table+` (id, note) VALUES (1, 'x')`); err != nil {
		t.Fatalf("migrated table unusable: %v", err)
	}
}

func TestApplyRefusesDuplicateVersions(t *testing.T) {
	pool := testenv.Postgres(t)
	_, err := migrate.Apply(context.Background(), pool, "dup", []migrate.Migration{{Version: 1, SQL: "SELECT 1"}, {Version: 1, SQL: "SELECT 2"}})
	if err == nil {
		t.Fatal("duplicate versions accepted")
	}
}
