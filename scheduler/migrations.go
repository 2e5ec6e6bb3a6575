package scheduler

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"hash/fnv"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/hexeract/hexeract/internal/migrate"
	"github.com/hexeract/hexeract/internal/sqlident"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// tables holds the validated, quoted names of the scheduler's tables.
type tables struct {
	name     sqlident.Name
	Table    string // scheduled messages
	Ticks    string // fired cron ticks
	Leases   string // cron leader lease
	DueIndex string // index on due_at (unqualified, as CREATE INDEX wants)
	channel  string // LISTEN/NOTIFY channel
}

func newTables(name string) (tables, error) {
	n, err := sqlident.Parse(name)
	if err != nil {
		return tables{}, fmt.Errorf("scheduler: table: %w; pass a name such as \"hexeract_scheduled\" or \"app.scheduled\" to scheduler.WithTable", err)
	}
	ticks, err := n.Derive("_ticks")
	if err != nil {
		return tables{}, fmt.Errorf("scheduler: table %q is too long to derive its companion tables: %w", name, err)
	}
	leases, err := n.Derive("_leases")
	if err != nil {
		return tables{}, fmt.Errorf("scheduler: table %q is too long to derive its companion tables: %w", name, err)
	}
	idx, err := sqlident.Parse(n.Table + "_due_idx")
	if err != nil {
		return tables{}, fmt.Errorf("scheduler: table %q is too long to derive its index name: %w", name, err)
	}
	return tables{
		name:     n,
		Table:    n.Quoted(),
		Ticks:    ticks.Quoted(),
		Leases:   leases.Quoted(),
		DueIndex: idx.Quoted(),
		channel:  channelName(n),
	}, nil
}

// channelName is the LISTEN/NOTIFY channel of the table: its name, or, when
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

// migrations renders the embedded SQL files for these tables.
func (t tables) migrations() ([]migrate.Migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	out := make([]migrate.Migration, 0, len(entries))
	for _, e := range entries {
		base := strings.TrimSuffix(e.Name(), ".sql")
		num, name, _ := strings.Cut(base, "_")
		version, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("scheduler: migration file %s: name must start with a version number", e.Name())
		}
		raw, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		tmpl, err := template.New(e.Name()).Parse(string(raw))
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, t); err != nil {
			return nil, err
		}
		out = append(out, migrate.Migration{Version: version, Name: name, SQL: buf.String()})
	}
	return out, nil
}

// component is the name under which the migrations are recorded.
func (t tables) component() string { return "scheduler:" + t.name.String() }

// Migrate creates or upgrades the scheduler's tables (the scheduled
// messages, the fired cron ticks and the cron lease). It is safe to call
// from several replicas at once and cheap when the schema is current;
// [Scheduler.Run] calls it before it starts.
func (s *Scheduler) Migrate(ctx context.Context) error {
	ms, err := s.t.migrations()
	if err != nil {
		return err
	}
	_, err = migrate.Apply(ctx, s.pool, s.t.component(), ms)
	return err
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
func (s *Scheduler) SchemaStatus(ctx context.Context) ([]SchemaStep, error) {
	ms, err := s.t.migrations()
	if err != nil {
		return nil, err
	}
	st, err := migrate.Statuses(ctx, s.pool, s.t.component(), ms)
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
