package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hexeract/hexeract/deadletter"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/saga"
	"github.com/hexeract/hexeract/scheduler"
	"github.com/hexeract/hexeract/store"
)

// schemaStep is one migration of one component, as printed by
// "hexeract migrate status".
type schemaStep struct {
	Component string    `json:"component"`
	Version   int       `json:"version"`
	Name      string    `json:"name"`
	AppliedAt time.Time `json:"applied_at,omitzero"`
}

// schemaComponent is a set of tables that "hexeract migrate" manages: one
// per Hexeract component that owns tables (outbox, inbox, saga store,
// scheduler), each with its flag of table names.
type schemaComponent struct {
	// flag is the name of the migrate flag listing the component's tables.
	flag string
	// check validates a table name before any connection is made.
	check func(table string) error
	// tables returns the configured table names of the component (from
	// its flag in opts); an empty result skips the component.
	tables func(opts *migrateFlags) []string
	up     func(ctx context.Context, st store.Store, table string) error
	status func(ctx context.Context, st store.Store, table string) ([]schemaStep, error)
}

type migrateFlags struct {
	outboxTables    []string
	inboxTables     []string
	sagaTables      []string
	schedulerTables []string
	deadTables      []string
	jsonOut         bool
}

func fromOutbox(steps []outbox.SchemaStatus) []schemaStep {
	out := make([]schemaStep, len(steps))
	for i, s := range steps {
		out[i] = schemaStep{Component: s.Component, Version: s.Version, Name: s.Name, AppliedAt: s.AppliedAt}
	}
	return out
}

// schemaComponents lists every component with tables, in the order
// "migrate up" applies them.
var schemaComponents = []schemaComponent{ //nolint:gochecknoglobals // a constant table of functions: never written; flag values are passed in
	{
		flag:   "outbox-table",
		check:  outbox.CheckTable,
		tables: func(o *migrateFlags) []string { return nonEmpty(o.outboxTables) },
		up: func(ctx context.Context, st store.Store, table string) error {
			return outbox.Migrate(ctx, st, outbox.WithTable(table))
		},
		status: func(ctx context.Context, st store.Store, table string) ([]schemaStep, error) {
			ob, err := outbox.New(store.Untyped(st), outbox.WithTable(table))
			if err != nil {
				return nil, err
			}
			steps, err := ob.SchemaStatus(ctx)
			return fromOutbox(steps), err
		},
	},
	{
		flag:   "inbox-table",
		check:  outbox.CheckInboxTable,
		tables: func(o *migrateFlags) []string { return nonEmpty(o.inboxTables) },
		up: func(ctx context.Context, st store.Store, table string) error {
			in, err := outbox.NewInbox(store.Untyped(st), outbox.WithInboxTable(table))
			if err != nil {
				return err
			}
			return in.Migrate(ctx)
		},
		status: func(ctx context.Context, st store.Store, table string) ([]schemaStep, error) {
			in, err := outbox.NewInbox(store.Untyped(st), outbox.WithInboxTable(table))
			if err != nil {
				return nil, err
			}
			steps, err := in.SchemaStatus(ctx)
			return fromOutbox(steps), err
		},
	},
	{
		flag:   "saga-table",
		check:  saga.CheckTable,
		tables: func(o *migrateFlags) []string { return nonEmpty(o.sagaTables) },
		up: func(ctx context.Context, st store.Store, table string) error {
			sagas, err := saga.NewSQLStore(st, saga.WithTable(table))
			if err != nil {
				return err
			}
			return sagas.Migrate(ctx)
		},
		status: func(ctx context.Context, st store.Store, table string) ([]schemaStep, error) {
			sagas, err := saga.NewSQLStore(st, saga.WithTable(table))
			if err != nil {
				return nil, err
			}
			steps, err := sagas.SchemaStatus(ctx)
			out := make([]schemaStep, len(steps))
			for i, s := range steps {
				out[i] = schemaStep{Component: s.Component, Version: s.Version, Name: s.Name, AppliedAt: s.AppliedAt}
			}
			return out, err
		},
	},
	{
		flag:   "scheduler-table",
		check:  scheduler.CheckTable,
		tables: func(o *migrateFlags) []string { return nonEmpty(o.schedulerTables) },
		up: func(ctx context.Context, st store.Store, table string) error {
			s, err := scheduler.New(store.Untyped(st), refuseSink, scheduler.WithTable(table))
			if err != nil {
				return err
			}
			return s.Migrate(ctx)
		},
		status: func(ctx context.Context, st store.Store, table string) ([]schemaStep, error) {
			s, err := scheduler.New(store.Untyped(st), refuseSink, scheduler.WithTable(table))
			if err != nil {
				return nil, err
			}
			steps, err := s.SchemaStatus(ctx)
			out := make([]schemaStep, len(steps))
			for i, x := range steps {
				out[i] = schemaStep{Component: x.Component, Version: x.Version, Name: x.Name, AppliedAt: x.AppliedAt}
			}
			return out, err
		},
	},
	{
		flag: "dead-letter-table",
		check: func(name string) error {
			// Checked per dialect when opened; here the PostgreSQL rule, the widest.
			_, err := deadletter.CheckTable(store.Postgres, name)
			return err
		},
		tables: func(o *migrateFlags) []string { return nonEmpty(o.deadTables) },
		up: func(ctx context.Context, st store.Store, table string) error {
			dl, err := deadletter.New(st, deadletter.WithTable(table))
			if err != nil {
				return err
			}
			return dl.Migrate(ctx)
		},
		status: func(ctx context.Context, st store.Store, table string) ([]schemaStep, error) {
			dl, err := deadletter.New(st, deadletter.WithTable(table))
			if err != nil {
				return nil, err
			}
			steps, err := dl.SchemaStatus(ctx)
			out := make([]schemaStep, len(steps))
			for i, x := range steps {
				out[i] = schemaStep{Component: x.Component, Version: x.Version, Name: x.Name, AppliedAt: x.AppliedAt}
			}
			return out, err
		},
	},
}

func newMigrateCommand() *cobra.Command {
	migrateOpts := &migrateFlags{}
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Create or upgrade Hexeract's tables (outbox, inbox, saga store, scheduler)",
		Long: `Applies the versioned schema migrations embedded in this binary to every
component's tables: the outbox, the inbox, the saga store and the scheduler
(each with its flag; the defaults are the components' default tables, "" skips
a component). Applied versions are recorded in the table
hexeract_schema_migrations; each run holds an advisory lock per component, so
several migrators (replicas starting at once) are safe. Needs --database-url
or $HEXERACT_DATABASE_URL.

"migrate status" exits with status 3 when a migration is pending, so a
deployment script can gate on it:

  hexeract migrate status || hexeract migrate up

Ctrl-C stops "migrate up" between migrations (the one in hand is committed
or rolled back whole); it prints what it applied and exits with status 130.`,
		RunE: subcommandRequired,
	}
	pf := cmd.PersistentFlags()
	pf.Var(newTableList(&migrateOpts.outboxTables, outbox.DefaultTable), "outbox-table",
		`outbox tables (table or schema.table; repeat or separate by commas; "" for none)`)
	pf.Var(newTableList(&migrateOpts.inboxTables, outbox.DefaultInboxTable), "inbox-table",
		`inbox tables (table or schema.table; repeat or separate by commas; "" for none)`)
	pf.Var(newTableList(&migrateOpts.sagaTables, saga.DefaultTable), "saga-table",
		`saga store tables (table or schema.table; repeat or separate by commas; "" for none)`)
	pf.Var(newTableList(&migrateOpts.schedulerTables, scheduler.DefaultTable), "scheduler-table",
		`scheduler tables (table or schema.table; repeat or separate by commas; "" for none)`)
	pf.Var(newTableList(&migrateOpts.deadTables, deadletter.DefaultTable), "dead-letter-table",
		`dead-letter store tables (table or schema.table; repeat or separate by commas; "" for none)`)

	up := &cobra.Command{
		Use:   "up",
		Short: "Apply every pending migration of every component",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkSchemaNames(migrateOpts); err != nil {
				return err
			}
			return withStore(cmd, func(ctx context.Context, st store.Store) error {
				applied := 0
				for _, c := range schemaComponents {
					for _, table := range c.tables(migrateOpts) {
						if ctx.Err() != nil {
							fmt.Fprintf(cmd.OutOrStdout(), "interrupted: %d migration(s) applied; run \"hexeract migrate up\" again for the rest\n", applied)
							return ctx.Err()
						}
						before, err := c.status(ctx, st, table)
						if err != nil {
							return err
						}
						// A migration runs in its own transaction: let it
						// finish rather than cancel it half way.
						upErr := c.up(context.WithoutCancel(ctx), st, table)
						after, err := c.status(context.WithoutCancel(ctx), st, table)
						if err != nil {
							return errors.Join(upErr, err)
						}
						applied += printApplied(cmd, before, after)
						if upErr != nil {
							return upErr
						}
					}
				}
				return nil
			})
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Print applied and pending migrations; exit status 3 when any is pending",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkSchemaNames(migrateOpts); err != nil {
				return err
			}
			return withStore(cmd, func(ctx context.Context, st store.Store) error {
				var all []schemaStep
				for _, c := range schemaComponents {
					for _, table := range c.tables(migrateOpts) {
						steps, err := c.status(ctx, st, table)
						if err != nil {
							return err
						}
						all = append(all, steps...)
					}
				}
				if err := printSteps(cmd, all, migrateOpts.jsonOut); err != nil {
					return err
				}
				pending := 0
				for _, s := range all {
					if s.AppliedAt.IsZero() {
						pending++
					}
				}
				if pending > 0 {
					return &statusError{code: exitPending, err: fmt.Errorf("%d migration(s) pending: run \"hexeract migrate up\"", pending)}
				}
				return nil
			})
		},
	}
	status.Flags().BoolVar(&migrateOpts.jsonOut, "json", false, "print one JSON object per migration")
	cmd.AddCommand(up, status)
	return cmd
}

// checkSchemaNames validates every configured table name before connecting.
func checkSchemaNames(migrateOpts *migrateFlags) error {
	for _, c := range schemaComponents {
		for _, table := range c.tables(migrateOpts) {
			if err := c.check(table); err != nil {
				return fmt.Errorf("--%s: %w", c.flag, err)
			}
		}
	}
	return nil
}

func nonEmpty(in []string) []string {
	var out []string
	for _, s := range in {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// withStore opens the store named by --database-url or
// HEXERACT_DATABASE_URL (any scheme storeurl.Open takes), runs fn and
// closes it.
func withStore(cmd *cobra.Command, fn func(context.Context, store.Store) error) error {
	st, err := openStore(cmd)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return fn(ctx, st)
}

// printApplied prints the migrations applied between before and after and
// returns how many.
func printApplied(cmd *cobra.Command, before, after []schemaStep) int {
	was := map[int]bool{}
	for _, s := range before {
		was[s.Version] = !s.AppliedAt.IsZero()
	}
	applied := 0
	for _, s := range after {
		if !was[s.Version] && !s.AppliedAt.IsZero() {
			fmt.Fprintf(cmd.OutOrStdout(), "applied %s version %d (%s)\n", s.Component, s.Version, s.Name)
			applied++
		}
	}
	if applied == 0 && len(after) > 0 {
		fmt.Fprintf(cmd.OutOrStdout(), "%s is up to date (version %d)\n", after[0].Component, after[len(after)-1].Version)
	}
	return applied
}

func printSteps(cmd *cobra.Command, steps []schemaStep, jsonOut bool) error {
	out := cmd.OutOrStdout()
	if jsonOut {
		enc := json.NewEncoder(out)
		for _, s := range steps {
			if err := enc.Encode(s); err != nil {
				return err
			}
		}
		return nil
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "COMPONENT\tVERSION\tNAME\tAPPLIED AT")
	for _, s := range steps {
		at := "pending"
		if !s.AppliedAt.IsZero() {
			at = s.AppliedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", s.Component, s.Version, s.Name, at)
	}
	return w.Flush()
}

// tableList is a repeatable, comma-separated flag of table names whose
// first use replaces the default.
type tableList struct {
	vals *[]string
	set  bool
}

func newTableList(vals *[]string, def ...string) *tableList {
	*vals = append([]string(nil), def...)
	return &tableList{vals: vals}
}

func (l *tableList) Set(v string) error {
	if !l.set {
		*l.vals = nil
		l.set = true
	}
	*l.vals = append(*l.vals, strings.Split(v, ",")...)
	return nil
}

func (l *tableList) String() string { return strings.Join(*l.vals, ",") }
func (l *tableList) Type() string   { return "tables" }
