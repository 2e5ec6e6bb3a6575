package outbox

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hexeract/hexeract/internal/migrate"
	"github.com/hexeract/hexeract/internal/sqlident"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// maxTableLen keeps every derived name (name_delivered, name_dlv_at_idx
// ...) within PostgreSQL's 63-byte identifier limit.
const maxTableLen = 63 - len("_delivered")

// tables holds the validated, quoted names built from one configured
// outbox table name.
type tables struct {
	name      sqlident.Name
	table     string // quoted main table
	dead      string // quoted dead table
	delivered string // quoted delivered table
	channel   string // LISTEN/NOTIFY channel
	lockClass int32  // advisory lock class for ordering keys
}

func resolveTables(name string) (tables, error) {
	n, err := sqlident.Parse(name)
	if err != nil {
		return tables{}, fmt.Errorf("outbox: table: %w; pass a name like \"hexeract_outbox\" or \"app.outbox\" to WithTable", err)
	}
	dead, err1 := n.Derive("_dead")
	delivered, err2 := n.Derive("_delivered")
	if err := errors.Join(err1, err2); err != nil || len(n.Table) > maxTableLen {
		return tables{}, fmt.Errorf("outbox: table name %q is too long: the names derived from it (%s_delivered, index names) need it to be at most %d bytes; pass a shorter name to WithTable", name, n.Table, maxTableLen)
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(n.String()))
	sum := h.Sum64()
	return tables{
		name:      n,
		table:     n.Quoted(),
		dead:      dead.Quoted(),
		delivered: delivered.Quoted(),
		channel:   "hexeract_outbox_" + strconv.FormatUint(sum, 16),
		lockClass: int32(sum),
	}, nil
}

// CheckTable reports whether name is usable as an outbox table name (see
// [WithTable]), without touching a database.
func CheckTable(name string) error {
	_, err := resolveTables(name)
	return err
}

// component is the name under which the table's migrations are recorded.
func (t tables) component() string { return "outbox:" + t.name.String() }

func indexName(n sqlident.Name, suffix string) (string, error) {
	d, err := sqlident.Parse(n.Table + suffix)
	if err != nil {
		return "", fmt.Errorf("table name %q is too long for its index names; use a name of at most %d bytes", n.String(), 63-len(suffix))
	}
	return d.Quoted(), nil
}

// loadMigrations renders the embedded migrations whose file names start
// with prefix ("outbox_" or "inbox_") for the given names.
func loadMigrations(prefix string, data map[string]string) ([]migrate.Migration, error) {
	entries, err := fs.Glob(migrationFiles, "migrations/"+prefix+"*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(entries)
	var out []migrate.Migration
	for _, path := range entries {
		base := strings.TrimSuffix(strings.TrimPrefix(path, "migrations/"+prefix), ".sql")
		num, name, ok := strings.Cut(base, "_")
		if !ok {
			return nil, fmt.Errorf("outbox: migration file %s is not named NNNN_name.sql", path)
		}
		version, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("outbox: migration file %s: %w", path, err)
		}
		text, err := migrationFiles.ReadFile(path)
		if err != nil {
			return nil, err
		}
		tmpl, err := template.New(path).Option("missingkey=error").Parse(string(text))
		if err != nil {
			return nil, fmt.Errorf("outbox: migration %s: %w", path, err)
		}
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, data); err != nil {
			return nil, fmt.Errorf("outbox: migration %s: %w", path, err)
		}
		out = append(out, migrate.Migration{Version: version, Name: name, SQL: buf.String()})
	}
	return out, nil
}

func (t tables) migrations() ([]migrate.Migration, error) {
	data := map[string]string{"Table": t.table, "Dead": t.dead, "Delivered": t.delivered, "Schema": ""}
	if t.name.Schema != "" {
		data["Schema"] = `"` + t.name.Schema + `"`
	}
	for key, suffix := range map[string]string{"KeyIndex": "_key_idx", "DeadIDIndex": "_dead_id", "DeliveredAtIndex": "_dlv_at"} {
		idx, err := indexName(t.name, suffix)
		if err != nil {
			return nil, fmt.Errorf("outbox: %w", err)
		}
		data[key] = idx
	}
	return loadMigrations("outbox_", data)
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

func toStatuses(in []migrate.Status) []SchemaStatus {
	out := make([]SchemaStatus, len(in))
	for i, s := range in {
		out[i] = SchemaStatus{Component: s.Component, Version: s.Version, Name: s.Name, AppliedAt: s.AppliedAt}
	}
	return out
}

// Migrate creates or upgrades the tables of the outbox named by opts (see
// [WithTable]) with the migrations embedded in this package. Migrations are
// versioned, recorded in the hexeract_schema_migrations table and applied
// under an advisory lock, so concurrent callers (replicas starting at once)
// are safe. It returns an error for a bad table name before any SQL runs.
func Migrate(ctx context.Context, pool *pgxpool.Pool, opts ...Option) error {
	o, err := New(pool, opts...)
	if err != nil {
		return err
	}
	return o.Migrate(ctx)
}

// Migrate creates or upgrades the outbox's tables; see the package-level [Migrate].
func (o *Outbox) Migrate(ctx context.Context) error {
	ms, err := o.t.migrations()
	if err != nil {
		return err
	}
	if _, err := migrate.Apply(ctx, o.pool, o.t.component(), ms); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// SchemaStatus reports which migrations of the outbox's tables are applied.
func (o *Outbox) SchemaStatus(ctx context.Context) ([]SchemaStatus, error) {
	ms, err := o.t.migrations()
	if err != nil {
		return nil, err
	}
	st, err := migrate.Statuses(ctx, o.pool, o.t.component(), ms)
	if err != nil {
		return nil, fmt.Errorf("outbox: schema status: %w", err)
	}
	return toStatuses(st), nil
}
