package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/store"
)

type outboxFlags struct {
	tables  []string
	limit   int
	after   int64
	all     bool
	batch   int
	jsonOut bool
}

func newOutboxCommand() *cobra.Command {
	outboxOpts := &outboxFlags{}
	cmd := &cobra.Command{
		Use:   "outbox",
		Short: "Inspect outbox tables and manage their dead rows",
		Long: `Reads the outbox tables written by outbox.Publish: pending rows, dead rows
(publish failed MaxAttempts times) and their replay or purge. Needs
--database-url or $HEXERACT_DATABASE_URL.`,
		RunE: subcommandRequired,
	}
	cmd.PersistentFlags().Var(newTableList(&outboxOpts.tables, outbox.DefaultTable), "table",
		"outbox tables (table or schema.table; repeat or separate by commas)")

	status := &cobra.Command{
		Use:   "status",
		Short: "Print pending, retrying and dead rows and the oldest pending age per table",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return outboxOpts.withOutboxes(cmd, func(ctx context.Context, obs []*outbox.Outbox[store.ExecutorTx]) error {
				var all []outbox.Stats
				for _, ob := range obs {
					st, err := ob.Stats(ctx)
					if err != nil {
						return err
					}
					all = append(all, st)
				}
				return outboxOpts.printOutboxStats(cmd, all)
			})
		},
	}
	status.Flags().BoolVar(&outboxOpts.jsonOut, "json", false, "print one JSON object per table")

	dead := &cobra.Command{Use: "dead", Short: "List, replay or purge dead outbox rows", RunE: subcommandRequired}
	list := &cobra.Command{
		Use:   "list",
		Short: "Print dead rows, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return outboxOpts.withOutboxes(cmd, func(ctx context.Context, obs []*outbox.Outbox[store.ExecutorTx]) error {
				for _, ob := range obs {
					rows, err := ob.DeadLetters(ctx, outboxOpts.after, outboxOpts.limit)
					if err != nil {
						return err
					}
					if err := outboxOpts.printDeadRows(cmd, ob.Table(), rows); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	list.Flags().IntVar(&outboxOpts.limit, "limit", 100, "print at most this many rows per table")
	list.Flags().Int64Var(&outboxOpts.after, "after", 0, "start after this sequence number (for paging)")
	list.Flags().BoolVar(&outboxOpts.jsonOut, "json", false, "print one JSON object per row (payload base64)")

	replay := &cobra.Command{
		Use:   "replay [ID...]",
		Short: "Move dead rows back into the outbox for delivery (given ids, or --all)",
		Long: `Moves dead rows back into the outbox with their attempts reset; running
relays deliver them again (they are woken by a notification). Give message
ids, or --all for every dead row. Large replays run in batches and show a
progress bar on stderr. Ctrl-C stops between batches: the batch in hand
commits whole, the count moved is printed and the exit status is 130.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return outboxOpts.moveDead(cmd, args, "replay")
		},
	}
	purge := &cobra.Command{
		Use:   "purge [ID...]",
		Short: "Delete dead rows for good (given ids, or --all)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return outboxOpts.moveDead(cmd, args, "purge")
		},
	}
	for _, c := range []*cobra.Command{replay, purge} {
		c.Flags().BoolVar(&outboxOpts.all, "all", false, "every dead row of the table(s)")
		c.Flags().IntVar(&outboxOpts.batch, "batch", 1000, "rows per transaction")
	}
	dead.AddCommand(list, replay, purge)
	cmd.AddCommand(status, dead)
	return cmd
}

func (outboxOpts *outboxFlags) withOutboxes(cmd *cobra.Command, fn func(context.Context, []*outbox.Outbox[store.ExecutorTx]) error) error {
	tables := nonEmpty(outboxOpts.tables)
	if len(tables) == 0 {
		return errors.New("no outbox table: pass --table")
	}
	// Validate every name before connecting.
	for _, t := range tables {
		if err := outbox.CheckTable(t); err != nil {
			return err
		}
	}
	return withStore(cmd, func(ctx context.Context, st store.Store) error {
		obs := make([]*outbox.Outbox[store.ExecutorTx], 0, len(tables))
		for _, t := range tables {
			ob, err := outbox.New(store.Untyped(st), outbox.WithTable(t))
			if err != nil {
				return err
			}
			status, err := ob.SchemaStatus(ctx)
			if err != nil {
				return err
			}
			if len(status) == 0 || status[0].Pending() {
				return fmt.Errorf("outbox table %s does not exist: run \"hexeract migrate up --outbox-table %s\" or pass --table", t, t)
			}
			obs = append(obs, ob)
		}
		return fn(ctx, obs)
	})
}

func (outboxOpts *outboxFlags) printOutboxStats(cmd *cobra.Command, all []outbox.Stats) error {
	out := cmd.OutOrStdout()
	if outboxOpts.jsonOut {
		enc := json.NewEncoder(out)
		for _, st := range all {
			if err := enc.Encode(map[string]any{
				"table": st.Table, "pending": st.Pending, "retrying": st.Retrying, "dead": st.Dead,
				"delivered_kept": st.Delivered, "oldest_pending_age_seconds": st.OldestPendingAge.Seconds(),
			}); err != nil {
				return err
			}
		}
		return nil
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TABLE\tPENDING\tRETRYING\tDEAD\tOLDEST PENDING\tDELIVERED KEPT")
	for _, st := range all {
		age := "-"
		if st.Pending > 0 {
			age = st.OldestPendingAge.Round(time.Millisecond).String()
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%s\t%d\n", st.Table, st.Pending, st.Retrying, st.Dead, age, st.Delivered)
	}
	return w.Flush()
}

func (outboxOpts *outboxFlags) printDeadRows(cmd *cobra.Command, table string, rows []outbox.DeadRow) error {
	out := cmd.OutOrStdout()
	if outboxOpts.jsonOut {
		enc := json.NewEncoder(out)
		for _, r := range rows {
			if err := enc.Encode(map[string]any{
				"table": table, "seq": r.Seq, "id": r.ID, "topic": r.Topic, "ordering_key": r.OrderingKey,
				"type": r.Metadata[router.KeyType], "attempts": r.Attempts, "last_error": r.LastError,
				"created_at": r.CreatedAt, "dead_at": r.DeadAt, "metadata": r.Metadata, "payload": r.Payload,
			}); err != nil {
				return err
			}
		}
		return nil
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "TABLE\tSEQ\tID\tTOPIC\tTYPE\tATTEMPTS\tDEAD AT\tLAST ERROR\n")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%d\t%s\t%s\n", table, r.Seq, r.ID, r.Topic, r.Metadata[router.KeyType],
			r.Attempts, r.DeadAt.UTC().Format(time.RFC3339), oneLine(r.LastError, 80))
	}
	return w.Flush()
}

func oneLine(s string, max int) string {
	b := []rune(s)
	for i, r := range b {
		if r == '\n' || r == '\r' || r == '\t' {
			b[i] = ' '
		}
	}
	if len(b) > max {
		return string(b[:max-1]) + "…"
	}
	return string(b)
}

func (outboxOpts *outboxFlags) moveDead(cmd *cobra.Command, ids []string, action string) error {
	if len(ids) == 0 && !outboxOpts.all {
		return fmt.Errorf("%s what? give message ids or --all", action)
	}
	if len(ids) > 0 && outboxOpts.all {
		return errors.New("give message ids or --all, not both")
	}
	ids = distinct(ids)
	return outboxOpts.withOutboxes(cmd, func(ctx context.Context, obs []*outbox.Outbox[store.ExecutorTx]) error {
		// An id is in at most one of the tables: count them over all
		// tables before saying some were not found.
		var found int64
		for _, ob := range obs {
			total := int64(len(ids))
			if outboxOpts.all {
				st, err := ob.Stats(ctx)
				if err != nil {
					return err
				}
				total = st.Dead
			}
			var bar *progressbar.ProgressBar
			if total > int64(outboxOpts.batch) {
				bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(cmd.ErrOrStderr()),
					progressbar.OptionSetDescription(action+" "+ob.Table()), progressbar.OptionShowCount(),
					progressbar.OptionOnCompletion(func() { fmt.Fprintln(cmd.ErrOrStderr()) }))
			}
			progress := func(done int64) {
				if bar != nil {
					_ = bar.Set64(done)
				}
			}
			var n int64
			var err error
			if action == "replay" {
				n, err = ob.ReplayDead(ctx, ids, outboxOpts.batch, progress)
			} else {
				n, err = ob.PurgeDead(ctx, ids, outboxOpts.batch, progress)
			}
			if bar != nil {
				_ = bar.Finish()
			}
			// The summary is printed in every case: after an interrupt
			// (Ctrl-C) or an error, n is exactly what was committed.
			verb := map[string]string{"replay": "replayed", "purge": "purged"}[action]
			fmt.Fprintf(cmd.OutOrStdout(), "%s %d dead rows of %s\n", verb, n, ob.Table())
			found += n
			if err != nil {
				if ctx.Err() != nil {
					st, serr := ob.Stats(context.WithoutCancel(ctx))
					if serr == nil {
						fmt.Fprintf(cmd.OutOrStdout(), "interrupted: %d dead rows left in %s; run the command again for the rest\n", st.Dead, ob.Table())
					}
				}
				return err
			}
		}
		if len(ids) > 0 && found < int64(len(ids)) {
			return fmt.Errorf("%d of %d ids had no dead row in %s", int64(len(ids))-found, len(ids), strings.Join(tableNames(obs), ", "))
		}
		return nil
	})
}

// distinct returns ids without repeats, in their first order.
func distinct(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

func tableNames(obs []*outbox.Outbox[store.ExecutorTx]) []string {
	names := make([]string, len(obs))
	for i, ob := range obs {
		names[i] = ob.Table()
	}
	return names
}
