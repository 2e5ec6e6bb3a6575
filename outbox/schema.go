package outbox

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/hexeract/hexeract/internal/sqlident"
	"github.com/hexeract/hexeract/store"
)

// maxTableLen keeps every derived name (name_delivered, name_dlv_at_idx
// ...) within PostgreSQL's 63-byte identifier limit.
const maxTableLen = 63 - len("_delivered")

// tables holds the validated names built from one configured outbox table
// name.
type tables struct {
	name    sqlident.Name
	st      store.OutboxTable
	channel string // notification channel
}

// resolveTablesFor validates name for dialect: PostgreSQL takes
// "schema.table", MySQL "database.table", SQLite a table name only.
func resolveTablesFor(d store.Dialect, name string) (tables, error) {
	t, err := resolveTables(name)
	if err != nil {
		return t, err
	}
	if d == store.SQLite && t.name.Schema != "" {
		return tables{}, fmt.Errorf("outbox: table %q: SQLite has no schemas; pass a table name without a dot to WithTable", name)
	}
	return t, nil
}

func resolveTables(name string) (tables, error) {
	n, err := sqlident.Parse(name)
	if err != nil {
		return tables{}, fmt.Errorf("outbox: table: %w; pass a name like \"hexeract_outbox\" or \"app.outbox\" to WithTable", err)
	}
	_, err1 := n.Derive("_dead")
	_, err2 := n.Derive("_delivered")
	if err := errors.Join(err1, err2); err != nil || len(n.Table) > maxTableLen {
		return tables{}, fmt.Errorf("outbox: table name %q is too long: the names derived from it (%s_delivered, index names) need it to be at most %d bytes; pass a shorter name to WithTable", name, n.Table, maxTableLen)
	}
	if _, err := indexName(n, "_dlv_at"); err != nil {
		return tables{}, fmt.Errorf("outbox: %w", err)
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(n.String()))
	sum := h.Sum64()
	channel := "hexeract_outbox_" + strconv.FormatUint(sum, 16)
	return tables{
		name:    n,
		channel: channel,
		st:      store.OutboxTable{Schema: n.Schema, Table: n.Table, Channel: channel, LockClass: int32(sum)},
	}, nil
}

// CheckTable reports whether name is usable as an outbox table name (see
// [WithTable]) on PostgreSQL and MySQL, without touching a database;
// SQLite takes names without a schema only.
func CheckTable(name string) error {
	_, err := resolveTables(name)
	return err
}

func indexName(n sqlident.Name, suffix string) (string, error) {
	d, err := sqlident.Parse(n.Table + suffix)
	if err != nil {
		return "", fmt.Errorf("table name %q is too long for its index names; use a name of at most %d bytes", n.String(), 63-len(suffix))
	}
	return d.Quoted(), nil
}

// SchemaStatus is the state of one schema migration of an outbox or inbox table.
type SchemaStatus struct {
	Component string    // "outbox:<table>" or "inbox:<table>"
	Version   int       // migration version, from 1
	Name      string    // short description
	AppliedAt time.Time // zero when pending
}

// Pending reports whether the migration has not been applied yet.
func (s SchemaStatus) Pending() bool { return s.AppliedAt.IsZero() }

func toStatuses(in []store.MigrationStatus) []SchemaStatus {
	out := make([]SchemaStatus, len(in))
	for i, s := range in {
		out[i] = SchemaStatus{Component: s.Component, Version: s.Version, Name: s.Name, AppliedAt: s.AppliedAt}
	}
	return out
}

// Migrate creates or upgrades the tables of the outbox named by opts (see
// [WithTable]) on st with the driver's migrations. Migrations are
// versioned, recorded in the hexeract_schema_migrations table and applied
// under the driver's migration lock, so concurrent callers (replicas
// starting at once) are safe. It returns an error for a bad table name
// before any SQL runs.
func Migrate(ctx context.Context, st store.Store, opts ...Option) error {
	o, err := New(store.Untyped(st), opts...)
	if err != nil {
		return err
	}
	return o.Migrate(ctx)
}

// Migrate creates or upgrades the outbox's tables; see the package-level [Migrate].
func (o *Outbox[TTx]) Migrate(ctx context.Context) error {
	return migrateComponent(ctx, o.drv, o.t.st.Component(), func(ex store.Executor) ([]store.Migration, error) {
		return ex.OutboxMigrations(o.t.st)
	})
}

// SchemaStatus reports which migrations of the outbox's tables are applied.
func (o *Outbox[TTx]) SchemaStatus(ctx context.Context) ([]SchemaStatus, error) {
	return schemaStatus(ctx, o.drv, o.t.st.Component(), func(ex store.Executor) ([]store.Migration, error) {
		return ex.OutboxMigrations(o.t.st)
	})
}

func migrateComponent(ctx context.Context, st store.Store, component string, ms func(store.Executor) ([]store.Migration, error)) error {
	migrations, err := ms(st.Executor())
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if _, err := st.Migrate(ctx, component, migrations); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

func schemaStatus(ctx context.Context, st store.Store, component string, ms func(store.Executor) ([]store.Migration, error)) ([]SchemaStatus, error) {
	migrations, err := ms(st.Executor())
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	status, err := st.MigrationStatus(ctx, component, migrations)
	if err != nil {
		return nil, fmt.Errorf("outbox: schema status of %s: %w", component, err)
	}
	return toStatuses(status), nil
}
