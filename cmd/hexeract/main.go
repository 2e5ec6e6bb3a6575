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
		fmt.Fprintln(os.Stderr, "hexeract:", err)
		os.Exit(1)
	}
}
