package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestVersionAndHelp(t *testing.T) {
	rootCmd := newRootCommand()
	var out bytes.Buffer
	rootCmd.SetOut(&out)
	rootCmd.SetArgs([]string{"version"})
	if err := rootCmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "hexeract ") {
		t.Fatalf("version output = %q", out.String())
	}
	out.Reset()
	rootCmd.SetArgs([]string{"--help"})
	if err := rootCmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "version") {
		t.Fatalf("help does not list the version command: %q", out.String())
	}
}

// TestMistypedSubcommandFails checks that a mistyped subcommand of a group
// command is an error (exit status 1), not the group's help with status 0,
// while the bare group command still prints its help.
func TestMistypedSubcommandFails(t *testing.T) {
	rootCmd := newRootCommand()
	for _, c := range []struct {
		args []string
		typo string
	}{
		{[]string{"migrate", "upp"}, "upp"},
		{[]string{"outbox", "statsu"}, "statsu"},
		{[]string{"outbox", "dead", "lst"}, "lst"},
		{[]string{"dlq", "lst", "orders.dlq"}, "lst"},
		{[]string{"saga", "lst"}, "lst"},
		{[]string{"scheduler", "lst"}, "lst"},
	} {
		var out, errOut bytes.Buffer
		rootCmd.SetOut(&out)
		rootCmd.SetErr(&errOut)
		rootCmd.SetArgs(c.args)
		err := rootCmd.Execute()
		if err == nil || !strings.Contains(err.Error(), `unknown command "`+c.typo+`"`) {
			t.Errorf("hexeract %s: err = %v, want an unknown command error", strings.Join(c.args, " "), err)
		}
	}
	var out bytes.Buffer
	rootCmd.SetOut(&out)
	rootCmd.SetArgs([]string{"outbox", "dead"})
	if err := rootCmd.Execute(); err != nil || !strings.Contains(out.String(), "replay") {
		t.Fatalf("hexeract outbox dead: %v\n%s", err, out.String())
	}
}
