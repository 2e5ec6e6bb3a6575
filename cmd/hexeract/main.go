// Command hexeract is Hexeract's command-line tool: schema migrations,
// outbox status, dead letters, scheduled messages and saga instances.
//
// Each subcommand lives in its own file and registers itself on the root
// command from an init function.
package main

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3"; when
// empty, the module version from the build info is used.
var version = ""

// rootCmd is the "hexeract" command; subcommands add themselves to it.
var rootCmd = &cobra.Command{
	Use:           "hexeract",
	Short:         "Hexeract messaging toolkit: migrations, outbox, dead letters, scheduler, sagas",
	SilenceUsage:  true,
	SilenceErrors: true,
}

func init() {
	rootCmd.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the hexeract version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "hexeract", buildVersion())
		},
	})
}

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
	if err := rootCmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, exitMessage(err))
		os.Exit(1)
	}
}
