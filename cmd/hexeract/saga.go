package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/spf13/cobra"

	"github.com/hexeract/hexeract/saga"
)

// sagaFlags are the flags of the saga subcommands.
type sagaFlags struct {
	table   string
	name    string
	status  string
	limit   int
	jsonOut bool
}

func newSagaCommand() *cobra.Command {
	var f sagaFlags
	cmd := &cobra.Command{
		Use:   "saga",
		Short: "List and show saga instances in the saga store (PostgreSQL, MySQL/MariaDB or SQLite)",
		Long: `Saga instances live in the saga store table (default hexeract_sagas): one row
per instance with its status (running, compensating, completed, failed), its
version, its state as JSON and the runtime's bookkeeping (pending timeouts,
registered compensations, failure reason, history of transitions). Completed and failed instances are
listed only when the application keeps them (saga.WithRetention).`,
		RunE: subcommandRequired,
	}
	cmd.PersistentFlags().StringVar(&f.table, "table", saga.DefaultTable, "saga store table (table or schema.table)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List saga instances, most recently updated first",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runSagaList(cmd, f) },
	}
	list.Flags().StringVar(&f.name, "saga", "", "only instances of this saga")
	list.Flags().StringVar(&f.status, "status", "", "only instances with this status: running, compensating, completed or failed")
	list.Flags().IntVar(&f.limit, "limit", 50, "print at most this many instances")
	list.Flags().BoolVar(&f.jsonOut, "json", false, "print one JSON object per instance")

	show := &cobra.Command{
		Use:   "show SAGA KEY",
		Short: "Show one saga instance: status, state, pending timeouts and compensations, and its history",
		Long: `Prints one instance: status, version, state, pending timeouts, the
compensations registered (or, while compensating, still to run) and its
history: every event, timeout and compensation step that changed it, oldest
first, with the status it left (the last 50 transitions are kept). For a failed
saga the history shows which steps ran, where it failed, and which
compensations ran. Finished instances exist only while the application keeps
them (saga.WithRetention).`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error { return runSagaShow(cmd, f, args[0], args[1]) },
	}
	show.Flags().BoolVar(&f.jsonOut, "json", false, "print the instance as one JSON object")

	cmd.AddCommand(list, show)
	return cmd
}

// sagaStore opens the saga store on --database-url (any driver
// storeurl.Open takes).
func sagaStore(cmd *cobra.Command, f sagaFlags) (*saga.SQLStore, func(), error) {
	st, err := openStore(cmd)
	if err != nil {
		return nil, nil, err
	}
	sagas, err := saga.NewSQLStore(st, saga.WithTable(f.table))
	if err != nil {
		_ = st.Close()
		return nil, nil, err
	}
	return sagas, func() { _ = st.Close() }, nil
}

func sagaContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// explainMissingTable turns "relation does not exist" (PostgreSQL 42P01,
// MySQL 1146, SQLite "no such table") into advice.
func explainMissingTable(err error, table string) error {
	var pgErr interface{ SQLState() string }
	var myErr *gomysql.MySQLError
	missing := errors.As(err, &pgErr) && pgErr.SQLState() == "42P01" ||
		errors.As(err, &myErr) && myErr.Number == 1146 ||
		err != nil && strings.Contains(err.Error(), "no such table")
	if missing {
		return fmt.Errorf("saga table %q does not exist: no saga has run against this database yet, or the application uses another table (pass --table)", table)
	}
	return err
}

var sagaStatuses = []saga.Status{saga.Running, saga.Compensating, saga.Completed, saga.Failed} //nolint:gochecknoglobals // a read-only list of the statuses, never written

func runSagaList(cmd *cobra.Command, f sagaFlags) error {
	if f.status != "" {
		ok := false
		for _, s := range sagaStatuses {
			ok = ok || string(s) == f.status
		}
		if !ok {
			return fmt.Errorf("unknown --status %q: use running, compensating, completed or failed", f.status)
		}
	}
	if f.limit <= 0 {
		return fmt.Errorf("--limit must be at least 1 (got %d)", f.limit)
	}
	store, closeDB, err := sagaStore(cmd, f)
	if err != nil {
		return err
	}
	defer closeDB()
	ins, err := store.List(sagaContext(cmd), saga.Filter{Saga: f.name, Status: saga.Status(f.status), Limit: f.limit})
	if err != nil {
		return explainMissingTable(err, f.table)
	}
	out := cmd.OutOrStdout()
	if f.jsonOut {
		enc := json.NewEncoder(out)
		for _, in := range ins {
			if err := enc.Encode(instanceJSON(in)); err != nil {
				return err
			}
		}
		return nil
	}
	if len(ins) == 0 {
		fmt.Fprintln(out, "no saga instances")
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SAGA\tKEY\tSTATUS\tVERSION\tUPDATED\tTIMEOUTS\tCOMPENSATIONS")
	for _, in := range ins {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%d\n", in.Saga, in.Key, in.Status, in.Version,
			in.UpdatedAt.UTC().Format(time.RFC3339), len(in.Meta.Timeouts), len(in.Meta.Compensations))
	}
	return tw.Flush()
}

func runSagaShow(cmd *cobra.Command, f sagaFlags, name, key string) error {
	store, closeDB, err := sagaStore(cmd, f)
	if err != nil {
		return err
	}
	defer closeDB()
	in, err := store.Get(sagaContext(cmd), name, key)
	if errors.Is(err, saga.ErrNotFound) {
		return fmt.Errorf("no instance of saga %q with key %q in %s (it may have completed and been deleted)", name, key, f.table)
	}
	if err != nil {
		return explainMissingTable(err, f.table)
	}
	out := cmd.OutOrStdout()
	if f.jsonOut {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(instanceJSON(in))
	}
	printInstance(out, in)
	return nil
}

// instanceView is the JSON shape of an instance in the CLI's output.
type instanceView struct {
	Saga           string                         `json:"saga"`
	Key            string                         `json:"key"`
	Status         saga.Status                    `json:"status"`
	Version        int64                          `json:"version"`
	State          json.RawMessage                `json:"state"`
	Timeouts       map[string]saga.PendingTimeout `json:"timeouts,omitempty"`
	Compensations  []saga.Step                    `json:"compensations,omitempty"`
	Failure        string                         `json:"failure,omitempty"`
	History        []saga.HistoryEntry            `json:"history,omitempty"`
	HistoryDropped int                            `json:"history_dropped,omitempty"`
	CreatedAt      time.Time                      `json:"created_at"`
	UpdatedAt      time.Time                      `json:"updated_at"`
	CompletedAt    *time.Time                     `json:"completed_at,omitempty"`
}

func instanceJSON(in *saga.Instance) instanceView {
	v := instanceView{
		Saga: in.Saga, Key: in.Key, Status: in.Status, Version: in.Version, State: in.State,
		Timeouts: in.Meta.Timeouts, Compensations: in.Meta.Compensations, Failure: in.Meta.Failure,
		History: in.Meta.History, HistoryDropped: in.Meta.HistoryDropped,
		CreatedAt: in.CreatedAt, UpdatedAt: in.UpdatedAt,
	}
	if !in.CompletedAt.IsZero() {
		v.CompletedAt = &in.CompletedAt
	}
	return v
}

func printInstance(w io.Writer, in *saga.Instance) {
	fmt.Fprintf(w, "saga:      %s\nkey:       %s\nstatus:    %s\nversion:   %d\n", in.Saga, in.Key, in.Status, in.Version)
	fmt.Fprintf(w, "created:   %s\nupdated:   %s\n", in.CreatedAt.UTC().Format(time.RFC3339Nano), in.UpdatedAt.UTC().Format(time.RFC3339Nano))
	if !in.CompletedAt.IsZero() {
		fmt.Fprintf(w, "finished:  %s\n", in.CompletedAt.UTC().Format(time.RFC3339Nano))
	}
	if in.Meta.Failure != "" {
		fmt.Fprintf(w, "failure:   %s\n", in.Meta.Failure)
	}
	var state bytes.Buffer
	if err := json.Indent(&state, in.State, "  ", "  "); err != nil {
		state.Reset()
		state.Write(in.State)
	}
	fmt.Fprintf(w, "state:\n  %s\n", state.String())
	if len(in.Meta.Timeouts) > 0 {
		fmt.Fprintln(w, "pending timeouts:")
		for typ, pt := range in.Meta.Timeouts {
			fmt.Fprintf(w, "  %s at %s (schedule %s)\n", typ, pt.At.UTC().Format(time.RFC3339), pt.ScheduleID)
		}
	}
	if n := len(in.Meta.Compensations); n > 0 {
		title := "compensations (run last first on failure):"
		if in.Status == saga.Compensating {
			title = "compensations still to run (last first):"
		}
		fmt.Fprintln(w, title)
		for i, s := range in.Meta.Compensations {
			fmt.Fprintf(w, "  %d. %s %s\n", i+1, s.Type, strings.TrimSpace(string(s.Payload)))
		}
	}
	if len(in.Meta.History) > 0 {
		fmt.Fprintln(w, "history (oldest first):")
		if in.Meta.HistoryDropped > 0 {
			fmt.Fprintf(w, "  (%d older transitions not kept)\n", in.Meta.HistoryDropped)
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, e := range in.Meta.History {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t-> %s", e.At.UTC().Format(time.RFC3339Nano), e.Kind, e.Type, e.Status)
			if e.Note != "" {
				fmt.Fprintf(tw, "\t%s", e.Note)
			}
			fmt.Fprintln(tw)
		}
		_ = tw.Flush()
	}
}
