package scheduler

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/hexeract/hexeract/internal/sqlident"
	"github.com/hexeract/hexeract/store"
)

// tables holds the validated names of the scheduler's tables.
type tables struct {
	name    sqlident.Name
	st      store.SchedulerTable
	channel string // notification channel
}

func newTables(name string) (tables, error) {
	n, err := sqlident.Parse(name)
	if err != nil {
		return tables{}, fmt.Errorf("scheduler: table: %w; pass a name such as \"hexeract_scheduled\" or \"app.scheduled\" to scheduler.WithTable", err)
	}
	for _, suffix := range []string{"_ticks", "_leases"} {
		if _, err := n.Derive(suffix); err != nil {
			return tables{}, fmt.Errorf("scheduler: table %q is too long to derive its companion tables: %w", name, err)
		}
	}
	if _, err := sqlident.Parse(n.Table + "_due_idx"); err != nil {
		return tables{}, fmt.Errorf("scheduler: table %q is too long to derive its index name: %w", name, err)
	}
	ch := channelName(n)
	return tables{name: n, channel: ch, st: store.SchedulerTable{Schema: n.Schema, Table: n.Table, Channel: ch}}, nil
}

// channelName is the notification channel of the table: its name, or, when
// that is longer than PostgreSQL allows for a channel (63 bytes, which a
// schema-qualified name may exceed), a name derived from its hash.
func channelName(n sqlident.Name) string {
	if len(n.String()) <= 63 {
		return n.String()
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(n.String()))
	return "hexeract_scheduled_" + strconv.FormatUint(h.Sum64(), 16)
}

// migrations returns the driver's migrations of the scheduler's tables.
func (s *Scheduler[TTx]) migrations() ([]store.Migration, error) {
	return s.drv.Executor().SchedulerMigrations(s.t.st)
}

// Migrate creates or upgrades the scheduler's tables (the scheduled
// messages, the fired cron ticks and the cron lease) with the driver's
// migrations, recorded under "scheduler:<table>". It is safe to call from
// several replicas at once and cheap when the schema is current. Run does
// not migrate: call Migrate (or run `hexeract migrate up`) first.
func (s *Scheduler[TTx]) Migrate(ctx context.Context) error {
	ms, err := s.migrations()
	if err != nil {
		return fmt.Errorf("scheduler: migrate %s: %w", s.t.name, err)
	}
	if _, err := s.drv.Migrate(ctx, s.t.st.Component(), ms); err != nil {
		return fmt.Errorf("scheduler: migrate %s: %w", s.t.name, err)
	}
	return nil
}

// SchemaStep is one schema migration of the scheduler's tables and when it
// was applied, as "hexeract migrate status" prints it.
type SchemaStep struct {
	Component string    // "scheduler:<table>"
	Version   int       // migration version, from 1
	Name      string    // short description
	AppliedAt time.Time // zero while pending
}

// Pending reports whether the migration has not been applied yet.
func (s SchemaStep) Pending() bool { return s.AppliedAt.IsZero() }

// SchemaStatus reports the scheduler's migrations and which are applied. It
// only reads.
func (s *Scheduler[TTx]) SchemaStatus(ctx context.Context) ([]SchemaStep, error) {
	ms, err := s.migrations()
	if err != nil {
		return nil, fmt.Errorf("scheduler: schema status: %w", err)
	}
	st, err := s.drv.MigrationStatus(ctx, s.t.st.Component(), ms)
	if err != nil {
		return nil, fmt.Errorf("scheduler: schema status: %w", err)
	}
	out := make([]SchemaStep, len(st))
	for i, x := range st {
		out[i] = SchemaStep{Component: x.Component, Version: x.Version, Name: x.Name, AppliedAt: x.AppliedAt}
	}
	return out, nil
}

// CheckTable validates a scheduler table name (and the names derived from
// it: the _ticks and _leases tables and the due index) without touching a
// database.
func CheckTable(table string) error {
	_, err := newTables(table)
	return err
}
