package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/spf13/cobra"

	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/scheduler"
	"github.com/hexeract/hexeract/store"
)

// schedulerFlags are the flags of the scheduler subcommands.
type schedulerFlags struct {
	table   string
	topic   string
	limit   int
	jsonOut bool
	force   bool
}

func newSchedulerCommand() *cobra.Command {
	var f schedulerFlags
	cmd := &cobra.Command{
		Use:   "scheduler",
		Short: "List and cancel pending scheduled messages",
		RunE:  subcommandRequired,
		Long: `Scheduled messages wait in a database table (default hexeract_scheduled)
until they are due; the scheduler's poller then hands them to the outbox.
These commands read and change that table directly; they need
--database-url or $HEXERACT_DATABASE_URL.`,
	}
	cmd.PersistentFlags().StringVar(&f.table, "table", "hexeract_scheduled", "scheduled-messages table (table or schema.table)")

	list := &cobra.Command{
		Use:   "list",
		Short: "Print pending scheduled messages in due order",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withScheduler(cmd, f, func(ctx context.Context, s *scheduler.Scheduler[store.ExecutorTx]) error {
				return runSchedulerList(ctx, cmd, s, f)
			})
		},
	}
	list.Flags().StringVar(&f.topic, "topic", "", "only messages for this topic")
	list.Flags().IntVar(&f.limit, "limit", 100, "print at most this many messages")
	list.Flags().BoolVar(&f.jsonOut, "json", false, "print one JSON object per message")

	cancel := &cobra.Command{
		Use:   "cancel ID...",
		Short: "Cancel pending scheduled messages by id",
		Long: `Removes each pending scheduled message with one of the given ids (as printed
by "hexeract scheduler list"). An id with no pending message (never scheduled,
already cancelled or already handed off) is reported and makes the command
fail after the others were processed.

A saga's timeout (a message carrying saga_name) is refused, and makes the
command fail: the saga would wait for it for ever while "hexeract saga show"
still lists it as pending. Handle it through the saga (an event that moves it
on cancels its timeout), or pass --force to cancel it anyway.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withScheduler(cmd, f, func(ctx context.Context, s *scheduler.Scheduler[store.ExecutorTx]) error {
				var missing, refused []string
				for i, id := range args {
					if ctx.Err() != nil {
						fmt.Fprintf(cmd.OutOrStdout(), "interrupted: %d of %d ids processed; not tried: %s\n", i, len(args), strings.Join(args[i:], " "))
						return ctx.Err()
					}
					// One cancel is one short statement: let it finish.
					err := cancelScheduled(context.WithoutCancel(ctx), s, id, f.force)
					switch {
					case errors.Is(err, scheduler.ErrNotFound):
						missing = append(missing, id)
						fmt.Fprintf(cmd.ErrOrStderr(), "not pending: %s\n", id)
					case errors.Is(err, errSagaTimeout):
						refused = append(refused, id)
						fmt.Fprintf(cmd.ErrOrStderr(), "refused: %v\n", err)
					case err != nil:
						return err
					default:
						fmt.Fprintf(cmd.OutOrStdout(), "cancelled %s\n", id)
					}
				}
				if len(refused) > 0 {
					return fmt.Errorf("%d of %d ids are saga timeouts and were not cancelled (--force cancels them); %d had no pending scheduled message", len(refused), len(args), len(missing))
				}
				if len(missing) > 0 {
					return fmt.Errorf("%d of %d ids had no pending scheduled message", len(missing), len(args))
				}
				return nil
			})
		},
	}
	cancel.Flags().BoolVar(&f.force, "force", false, "also cancel a saga's timeout")
	cmd.AddCommand(list, cancel)
	return cmd
}

// errSagaTimeout marks a cancel refused because the message is a saga's
// timeout.
var errSagaTimeout = errors.New("a saga's timeout") //nolint:gochecknoglobals // a sentinel error, never reassigned

// cancelScheduled cancels the pending message id, refusing a saga's timeout
// unless force is set.
func cancelScheduled(ctx context.Context, s *scheduler.Scheduler[store.ExecutorTx], id string, force bool) error {
	if !force {
		p, err := s.Get(ctx, id)
		if err != nil {
			return err
		}
		if name := p.Metadata.Get(router.KeySagaName); name != "" {
			key := p.Metadata.Get(router.KeySagaKey)
			return fmt.Errorf("%w: %s is the %s timeout of saga %s instance %s, which waits for it (hexeract saga show %s %s); not cancelled: pass --force to cancel it anyway",
				errSagaTimeout, id, p.Type, name, key, name, key)
		}
	}
	return s.Cancel(ctx, id)
}

// refuseSink is the sink of the CLI's Scheduler, which only reads and
// cancels: it never runs the poller, so nothing is handed off.
var refuseSink = scheduler.SinkFunc(func(context.Context, store.Executor, string, ...*message.Message) error { //nolint:gochecknoglobals // a stateless function value, never reassigned
	return errors.New("the hexeract CLI does not deliver scheduled messages")
})

func withScheduler(cmd *cobra.Command, f schedulerFlags, fn func(context.Context, *scheduler.Scheduler[store.ExecutorTx]) error) error {
	if err := scheduler.CheckTable(f.table); err != nil {
		return err
	}
	st, err := openStore(cmd)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	s, err := scheduler.New(store.Untyped(st), refuseSink, scheduler.WithTable(f.table))
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	if err := checkSchedulerTable(ctx, s); err != nil {
		return err
	}
	return fn(ctx, s)
}

// checkSchedulerTable refuses a table whose migrations were never applied.
func checkSchedulerTable(ctx context.Context, s *scheduler.Scheduler[store.ExecutorTx]) error {
	steps, err := s.SchemaStatus(ctx)
	if err != nil {
		return err
	}
	if len(steps) > 0 && steps[0].Pending() {
		return fmt.Errorf("table %s does not exist: run \"hexeract migrate up --scheduler-table %s\" or pass --table", s.Table(), s.Table())
	}
	return nil
}

func runSchedulerList(ctx context.Context, cmd *cobra.Command, s *scheduler.Scheduler[store.ExecutorTx], f schedulerFlags) error {
	pending, err := s.List(ctx, f.topic, f.limit)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if f.jsonOut {
		enc := json.NewEncoder(out)
		for _, p := range pending {
			if err := enc.Encode(struct {
				ID        string    `json:"id"`
				Topic     string    `json:"topic"`
				Type      string    `json:"type,omitempty"`
				DueAt     time.Time `json:"due_at"`
				CreatedAt time.Time `json:"created_at"`
				Refusals  int       `json:"refusals,omitempty"`
				LastError string    `json:"last_error,omitempty"`
			}{p.ID, p.Topic, p.Type, p.DueAt.UTC(), p.CreatedAt.UTC(), p.Refusals, p.LastError}); err != nil {
				return err
			}
		}
		return nil
	}
	total, err := s.CountTopic(ctx, f.topic)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTOPIC\tTYPE\tDUE (UTC)\tIN\tREFUSED")
	now := time.Now()
	for _, p := range pending {
		in := p.DueAt.Sub(now).Round(time.Second)
		when := "in " + in.String()
		if in <= 0 {
			when = "due now"
		}
		refused := ""
		if p.Refusals > 0 {
			refused = fmt.Sprintf("%dx: %s", p.Refusals, preview([]byte(p.LastError), 60))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.Topic, p.Type, p.DueAt.UTC().Format(time.RFC3339), when, refused)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if f.topic != "" {
		fmt.Fprintf(out, "%d shown, %d pending for %s in %s\n", len(pending), total, f.topic, s.Table())
		return nil
	}
	fmt.Fprintf(out, "%d shown, %d pending in %s\n", len(pending), total, s.Table())
	return nil
}
