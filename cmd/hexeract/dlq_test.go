package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/adapters"
	dlqapi "github.com/hexeract/hexeract/adapters/dlq"
	"github.com/hexeract/hexeract/internal/testenv"
)

type cliOrder struct {
	ID  string `json:"id"`
	Bad bool   `json:"bad"`
}

func (cliOrder) MessageType() string { return "cli.order" }

// runCLI runs a new hexeract command tree with args, so every flag starts
// at its default.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	// A fresh command tree: no flag keeps a value from an earlier run.
	rootCmd := newRootCommand()
	rootCmd.SetOut(&out)
	rootCmd.SetErr(&errOut)
	rootCmd.SetArgs(args)
	err = rootCmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func TestDLQNeedsATransport(t *testing.T) {
	t.Setenv(adapters.EnvTransport, "")
	_, _, err := runCLI(t, "dlq", "list", "x.dlq")
	if err == nil || !strings.Contains(err.Error(), adapters.EnvTransport) {
		t.Fatalf("err = %v", err)
	}
}

// TestDLQMoveNeedsATopic: a message on a dead-letter topic without fault
// metadata is left in place and the error says to pass --to.
func TestDLQMoveNeedsATopic(t *testing.T) {
	suffix := testenv.Suffix()
	env := redisEnv(t, suffix)
	dlqTopic := "dlqt-" + suffix + ".dlq"
	tr, err := adapters.Open(context.Background(), env.url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tr.Close() }()
	if err := tr.Publisher.Publish(dlqTopic, message.NewMessage("raw-1", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	before := env.snapshot(t)
	out, _, err := runCLI(t, "dlq", "move", dlqTopic, "--transport", env.url, "-q")
	if err == nil || !strings.Contains(err.Error(), "--to") || !strings.Contains(out, "0 dead letter(s) moved") {
		t.Fatalf("err = %v, out:\n%s", err, out)
	}
	if after := env.snapshot(t); after != before {
		t.Fatalf("refused move changed the broker:\n%s\n%s", before, after)
	}
	// One "hexeract:" per line, however deep the library error is.
	if msg := exitMessage(err); strings.Count(msg, "hexeract:") != 1 {
		t.Fatalf("exit message %q repeats the prefix", msg)
	}
	var unknown *dlqapi.UnknownError
	_, _, err = runCLI(t, "dlq", "count", "dlqt-"+suffix+".dlx", "--transport", env.url)
	if !errors.As(err, &unknown) || !strings.Contains(err.Error(), dlqTopic) {
		t.Fatalf("count of a mistyped topic: %v", err)
	}
}
