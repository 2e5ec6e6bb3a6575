// Command hexeract is Hexeract's command-line tool: schema migrations,
// outbox status, dead letters, scheduled messages and saga instances.
//
// Each subcommand lives in its own file; main.go wires them onto the root
// command in a fixed order (see newRootCommand), so no file depends on
// another's init running first.
//
// Ctrl-C (SIGINT) and SIGTERM cancel the running command's context: a
// command finishes the message, row batch or migration in hand (or gives it
// back), stops, prints what it did, and hexeract exits with status 130. A
// second signal kills the process at once.
//
// Exit statuses: 0 success; 1 error; 3 "hexeract migrate status" found
// pending migrations; 130 interrupted by a signal.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3"; when
// empty, the module version from the build info is used. Only the linker
// writes it (gochecknoglobals allows a variable named version for this).
var version = ""

// Exit statuses of the hexeract command.
const (
	exitError       = 1
	exitPending     = 3   // migrate status: migrations are pending
	exitInterrupted = 130 // SIGINT or SIGTERM (128 + SIGINT, as shells report it)
)

// newRootCommand builds the command tree. The subcommands' constructors
// run here, in this order, rather than from each file's init function, so
// a command that extends another (the migrate flags of every component)
// never depends on the order Go runs init functions in.
func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "hexeract",
		Short:         "Hexeract messaging toolkit: migrations, outbox, dead letters, scheduler, sagas",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("database-url", "",
		"PostgreSQL URL (default $HEXERACT_DATABASE_URL)")
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the hexeract version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "hexeract", buildVersion())
		},
	})
	root.AddCommand(newMigrateCommand(), newOutboxCommand(), newDLQCommand(), newSchedulerCommand(), newSagaCommand())
	return root
}

// statusError is an error with its own exit status.
type statusError struct {
	code int
	err  error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// subcommandRequired is the RunE of a command that only groups
// subcommands (migrate, outbox, ...): without it cobra prints the help and
// exits 0 for a mistyped subcommand ("hexeract migrate upp"), so a script
// would carry on as if it had run.
func subcommandRequired(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unknown command %q for %q: run %q for the list", args[0], cmd.CommandPath(), cmd.CommandPath()+" --help")
	}
	return cmd.Help()
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "(devel)"
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	finished := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			// The first signal cancels ctx; from now on a second one gets
			// the default behaviour (the process dies at once).
			stop()
			fmt.Fprintln(os.Stderr, "hexeract: interrupted: finishing the work in hand (send the signal again to kill at once)")
		case <-finished: // the command ended without a signal
		}
	}()
	err := newRootCommand().ExecuteContext(ctx)
	interrupted := ctx.Err() != nil
	close(finished)
	code := exitStatus(os.Stderr, err, interrupted)
	stop()
	os.Exit(code)
}

// exitStatus prints err (if any) to w and returns the process's exit
// status: exitInterrupted when a signal cancelled the command, whatever the
// command returned, so a script never mistakes an interrupted run for a
// complete one.
func exitStatus(w io.Writer, err error, interrupted bool) int {
	if err != nil && (!interrupted || !isBareCancel(err)) {
		fmt.Fprintln(w, exitMessage(err))
	}
	if interrupted {
		fmt.Fprintf(w, "hexeract: interrupted by a signal (exit status %d)\n", exitInterrupted)
		return exitInterrupted
	}
	if err == nil {
		return 0
	}
	var se *statusError
	if errors.As(err, &se) {
		return se.code
	}
	return exitError
}

// isBareCancel reports whether err says no more than "context canceled".
func isBareCancel(err error) bool { return err.Error() == context.Canceled.Error() }
