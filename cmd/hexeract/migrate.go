package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hexeract/hexeract/outbox"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
)

// schemaStep is one migration of one component, as printed by
// "hexeract migrate status".
type schemaStep struct {
	Component string    `json:"component"`
	Version   int       `json:"version"`
	Name      string    `json:"name"`
	AppliedAt time.Time `json:"applied_at,omitzero"`
}

// schemaComponent is a set of tables that "hexeract migrate" manages. The
// outbox and inbox register themselves below; other areas can add
// theirs from an init function with registerSchema.
type schemaComponent struct {
	// check validates a table name before any connection is made.
	check func(table string) error
	// tables returns the configured table names of the component (from
	// its flags); an empty result skips the component.
	tables func() []string
	up     func(ctx context.Context, pool *pgxpool.Pool, table string) error
	status func(ctx context.Context, pool *pgxpool.Pool, table string) ([]schemaStep, error)
}

var schemaComponents []schemaComponent

func registerSchema(c schemaComponent) { schemaComponents = append(schemaComponents, c) }

type migrateFlags struct {
	outboxTables []string
	inboxTables  []string
	jsonOut      bool
}

var migrateOpts migrateFlags

func fromOutbox(st []outbox.SchemaStatus) []schemaStep {
	out := make([]schemaStep, len(st))
	for i, s := range st {
		out[i] = schemaStep{Component: s.Component, Version: s.Version, Name: s.Name, AppliedAt: s.AppliedAt}
	}
	return out
}

func init() {
	registerSchema(schemaComponent{
		check:  outbox.CheckTable,
		tables: func() []string { return nonEmpty(migrateOpts.outboxTables) },
		up: func(ctx context.Context, pool *pgxpool.Pool, table string) error {
			return outbox.Migrate(ctx, pool, outbox.WithTable(table))
		},
		status: func(ctx context.Context, pool *pgxpool.Pool, table string) ([]schemaStep, error) {
			ob, err := outbox.New(pool, outbox.WithTable(table))
			if err != nil {
				return nil, err
			}
			st, err := ob.SchemaStatus(ctx)
			return fromOutbox(st), err
		},
	})
	registerSchema(schemaComponent{
		check:  outbox.CheckInboxTable,
		tables: func() []string { return nonEmpty(migrateOpts.inboxTables) },
		up: func(ctx context.Context, pool *pgxpool.Pool, table string) error {
			in, err := outbox.NewInbox(pool, outbox.WithInboxTable(table))
			if err != nil {
				return err
			}
			return in.Migrate(ctx)
		},
		status: func(ctx context.Context, pool *pgxpool.Pool, table string) ([]schemaStep, error) {
			in, err := outbox.NewInbox(pool, outbox.WithInboxTable(table))
			if err != nil {
				return nil, err
			}
			st, err := in.SchemaStatus(ctx)
			return fromOutbox(st), err
		},
	})

	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Create or upgrade Hexeract's tables (outbox, inbox)",
		Long: `Applies the versioned schema migrations embedded in this binary. Applied
versions are recorded in the table hexeract_schema_migrations; each run holds
an advisory lock per component, so several migrators (replicas starting at
once) are safe. Needs --database-url or $HEXERACT_DATABASE_URL.`,
		RunE: subcommandRequired,
	}
	cmd.PersistentFlags().Var(newTableList(&migrateOpts.outboxTables, outbox.DefaultTable), "outbox-table",
		`outbox tables (table or schema.table; repeat or separate by commas; "" for none)`)
	cmd.PersistentFlags().Var(newTableList(&migrateOpts.inboxTables, outbox.DefaultInboxTable), "inbox-table",
		`inbox tables (table or schema.table; repeat or separate by commas; "" for none)`)

	up := &cobra.Command{
		Use:   "up",
		Short: "Apply every pending migration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkSchemaNames(); err != nil {
				return err
			}
			return withPool(cmd, func(ctx context.Context, pool *pgxpool.Pool) error {
				for _, c := range schemaComponents {
					for _, table := range c.tables() {
						before, err := c.status(ctx, pool, table)
						if err != nil {
							return err
						}
						if err := c.up(ctx, pool, table); err != nil {
							return err
						}
						after, err := c.status(ctx, pool, table)
						if err != nil {
							return err
						}
						printApplied(cmd, before, after)
					}
				}
				return nil
			})
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Print applied and pending migrations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkSchemaNames(); err != nil {
				return err
			}
			return withPool(cmd, func(ctx context.Context, pool *pgxpool.Pool) error {
				var all []schemaStep
				for _, c := range schemaComponents {
					for _, table := range c.tables() {
						st, err := c.status(ctx, pool, table)
						if err != nil {
							return err
						}
						all = append(all, st...)
					}
				}
				return printSteps(cmd, all, migrateOpts.jsonOut)
			})
		},
	}
	status.Flags().BoolVar(&migrateOpts.jsonOut, "json", false, "print one JSON object per migration")
	cmd.AddCommand(up, status)
	rootCmd.AddCommand(cmd)
}

// checkSchemaNames validates every configured table name before connecting.
func checkSchemaNames() error {
	for _, c := range schemaComponents {
		for _, table := range c.tables() {
			if c.check != nil {
				if err := c.check(table); err != nil {
					return err
				}
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

// withPool connects, runs fn and closes the pool.
func withPool(cmd *cobra.Command, fn func(context.Context, *pgxpool.Pool) error) error {
	pool, err := connectDB(cmd)
	if err != nil {
		return err
	}
	defer pool.Close()
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return fn(ctx, pool)
}

func printApplied(cmd *cobra.Command, before, after []schemaStep) {
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
	def  []string
	set  bool
}

func newTableList(vals *[]string, def ...string) *tableList {
	*vals = append([]string(nil), def...)
	return &tableList{vals: vals, def: def}
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

// reset restores the default (used by tests, which run several commands).
func (l *tableList) reset() { *l.vals, l.set = append([]string(nil), l.def...), false }
