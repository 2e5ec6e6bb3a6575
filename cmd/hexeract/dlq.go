package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/hexeract/hexeract/adapters"
	dlqapi "github.com/hexeract/hexeract/adapters/dlq"
	"github.com/hexeract/hexeract/middleware"
)

// dlqFlags are the flags of the dlq subcommands.
type dlqFlags struct {
	transport string
	group     string
	limit     int
	wait      time.Duration
	jsonOut   bool
	stack     bool
	to        string
	newGroup  bool
	quiet     bool
}

// newDLQCommand builds "hexeract dlq" and its subcommands.
func newDLQCommand() *cobra.Command {
	var f dlqFlags
	dlq := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect dead-letter topics and move dead letters back to their topics",
		Long: `Dead letters are the messages Hexeract's DeadLetter middleware moved aside after
their handler failed for good; they live on "<topic>.dlq" with fault metadata
(hexeract_fault_error, _type, _handler, _topic, _attempts, _first_failure,
_last_failure, _stack) and Watermill's poison-queue keys.

The transport is a URL (--transport or $HEXERACT_TRANSPORT): amqp://, kafka://,
nats://, postgres://, redis://, sqs://. The commands are built on the Go
package github.com/hexeract/hexeract/adapters/dlq.

Reads (list, count, topics) never declare, create, bind, consume, re-publish
or commit anything: RabbitMQ basic.get without ack, every message given back
with basic.nack requeue; NATS JetStream reads stream messages by sequence
(no consumer); Redis XRANGE/XINFO; Kafka reads partitions by offset without a
group; PostgreSQL SELECTs; SQS receives with a visibility timeout and makes
each message visible again at once (SQS has no peek: each list adds one to
the messages' ApproximateReceiveCount).

--group: on RabbitMQ the group whose dead-letter queue "<topic>_<group>" is
read (default: the URL's group, else "hexeract"); on Kafka, NATS, Redis and
PostgreSQL only what the group has not acknowledged (default: every message);
SQS has no groups. An unknown topic or group is an error listing the existing
ones.

SIGINT or SIGTERM: the message in hand is finished or given back, what was
done is printed, and the command exits non-zero.

Dead letters kept in the database (an App with a dead-letter store) are read
and retried with "hexeract dlq stored ..." (see its --help).`,
		RunE: subcommandRequired,
	}
	dlq.PersistentFlags().StringVar(&f.transport, "transport", "", "transport URL (default $"+adapters.EnvTransport+")")
	dlq.PersistentFlags().StringVar(&f.group, "group", "", "consumer group (see dlq --help)")
	dlq.PersistentFlags().IntVar(&f.limit, "limit", 0, "stop after this many messages (0: no limit)")
	dlq.PersistentFlags().DurationVar(&f.wait, "wait", 0, "ignored: reads no longer wait for messages")
	_ = dlq.PersistentFlags().MarkDeprecated("wait", "reads no longer wait for messages; drop the flag")

	list := &cobra.Command{
		Use:   "list DLQ-TOPIC",
		Short: "Print the dead letters of a topic with their fault details, leaving the broker as it was",
		Long: `Prints each dead letter of DLQ-TOPIC (for example orders.dlq) with its fault
details, then "N dead letter(s) on DLQ-TOPIC". Nothing is created, bound,
consumed, re-published or committed (see "hexeract dlq --help").`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runDLQList(cmd, f, args[0]) },
	}
	list.Flags().BoolVar(&f.jsonOut, "json", false, "print one JSON object per message")
	list.Flags().BoolVar(&f.stack, "stack", false, "print the panic stack of dead letters that have one")

	count := &cobra.Command{
		Use:   "count DLQ-TOPIC",
		Short: "Print the number of dead letters of a topic",
		Args:  cobra.ExactArgs(1),
		RunE:  func(cmd *cobra.Command, args []string) error { return runDLQCount(cmd, f, args[0]) },
	}
	topics := &cobra.Command{
		Use:   "topics",
		Short: "Print the dead-letter topics on the broker (RabbitMQ: needs the management API)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runDLQTopics(cmd, f) },
	}

	move := &cobra.Command{
		Use:   "move DLQ-TOPIC",
		Short: "Publish dead letters back to their original topic and remove them from the dead-letter topic",
		Long: `Publishes each dead letter of DLQ-TOPIC, without its fault metadata (and without
transport delivery state such as _watermill_amqp_redelivered), to its original
topic (hexeract_fault_topic, or Watermill's topic_poisoned) or to --to, and
removes it from DLQ-TOPIC only after that publish succeeded.

The move makes one pass over the dead letters present when it starts and stops:
a message whose handler still fails and comes back to DLQ-TOPIC is not moved
again. A destination without a subscriber (RabbitMQ: no queue bound to its
exchange, the publish is mandatory; NATS: a stream without consumer; Redis: a
stream without group; PostgreSQL: no offsets table; Kafka: no group on it;
SQS: no queue) is refused before anything moves.

How a moved dead letter is removed: RabbitMQ basic.ack; NATS deletes it from
the stream; Redis XACK in every group and XDEL; PostgreSQL deletes its row in
the transaction that inserts the message into the destination table; SQS
DeleteMessage; Kafka cannot delete a record, so the move commits the offsets of
--group (required; a group that has no offsets on the topic yet needs
--new-group and starts at the oldest record).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runDLQMove(cmd, f, args[0]) },
	}
	move.Flags().StringVar(&f.to, "to", "", "publish to this topic instead of the original one")
	move.Flags().BoolVar(&f.newGroup, "new-group", false, "Kafka: --group has no offsets on the topic yet; start it at the oldest record")
	move.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "no progress bar")

	dlq.AddCommand(list, count, topics, move, newDLQStoredCommand())
	return dlq
}

// openBroker opens the dead-letter API on the transport of f.
func openBroker(ctx context.Context, f dlqFlags) (*dlqapi.Broker, error) {
	raw := f.transport
	if raw == "" {
		raw = os.Getenv(adapters.EnvTransport)
		if raw == "" {
			return nil, fmt.Errorf("no transport: pass --transport URL or set %s (amqp://, kafka://, nats://, postgres://, redis://, sqs://)", adapters.EnvTransport)
		}
	}
	return dlqapi.Open(ctx, raw)
}

// brokerSession opens the dead-letter API for a command: ctx is the
// command's context (main cancels it on SIGINT or SIGTERM), and done closes
// the broker.
func brokerSession(cmd *cobra.Command, f dlqFlags) (ctx context.Context, b *dlqapi.Broker, done func(), err error) {
	ctx, stop := context.WithCancel(cmd.Context()) // main cancels it on SIGINT or SIGTERM
	b, err = openBroker(ctx, f)
	if err != nil {
		stop()
		return nil, nil, nil, err
	}
	return ctx, b, func() { _ = b.Close(); stop() }, nil
}

// interrupted turns a cancellation into an error saying what was done.
func interrupted(ctx context.Context, err error, done string) error {
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return fmt.Errorf("interrupted: %s", done)
	}
	return err
}

func runDLQList(cmd *cobra.Command, f dlqFlags, topic string) error {
	ctx, b, done, err := brokerSession(cmd, f)
	if err != nil {
		return err
	}
	defer done()
	out := cmd.OutOrStdout()
	count := 0
	err = b.List(ctx, topic, dlqapi.Query{Group: f.group, Limit: f.limit}, func(msg *message.Message) error {
		count++
		if f.jsonOut {
			return printDeadLetterJSON(out, msg)
		}
		printDeadLetter(out, msg, f.stack)
		return ctx.Err()
	})
	if err != nil {
		return interrupted(ctx, err, fmt.Sprintf("%d dead letter(s) of %s listed, all left in place", count, topic))
	}
	if !f.jsonOut {
		fmt.Fprintf(out, "%d dead letter(s) on %s\n", count, topic)
	}
	return nil
}

func runDLQCount(cmd *cobra.Command, f dlqFlags, topic string) error {
	ctx, b, done, err := brokerSession(cmd, f)
	if err != nil {
		return err
	}
	defer done()
	n, err := b.Count(ctx, topic, dlqapi.Query{Group: f.group, Limit: f.limit})
	if err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), n)
	return nil
}

func runDLQTopics(cmd *cobra.Command, f dlqFlags) error {
	ctx, b, done, err := brokerSession(cmd, f)
	if err != nil {
		return err
	}
	defer done()
	ts, err := b.Topics(ctx)
	if err != nil {
		return err
	}
	for _, t := range ts {
		fmt.Fprintln(cmd.OutOrStdout(), t)
	}
	return nil
}

func printDeadLetter(w io.Writer, msg *message.Message, stack bool) {
	f, _ := middleware.FaultOf(msg.Metadata)
	fmt.Fprintf(w, "%s  from %s", msg.UUID, orDash(f.Topic))
	if f.Handler != "" {
		fmt.Fprintf(w, "  handler %s", f.Handler)
	}
	if f.Attempts > 0 {
		fmt.Fprintf(w, "  attempts %d", f.Attempts)
	}
	if f.Permanent {
		fmt.Fprint(w, "  permanent")
	}
	fmt.Fprintln(w)
	if f.Type != "" {
		fmt.Fprintf(w, "  type:   %s\n", f.Type)
	}
	fmt.Fprintf(w, "  error:  %s\n", orDash(f.Error))
	if !f.FirstFailure.IsZero() {
		fmt.Fprintf(w, "  failed: %s .. %s\n", f.FirstFailure.Format(time.RFC3339Nano), f.LastFailure.Format(time.RFC3339Nano))
	}
	keys := make([]string, 0, len(msg.Metadata))
	for k := range msg.Metadata {
		if !middleware.IsFaultKey(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %s: %s\n", k, msg.Metadata[k])
	}
	fmt.Fprintf(w, "  payload (%d bytes): %s\n", len(msg.Payload), preview(msg.Payload, 200))
	if stack && f.Stack != "" {
		fmt.Fprintln(w, "  stack:")
		for _, frame := range strings.Split(f.Stack, " | ") {
			fmt.Fprintf(w, "    %s\n", frame)
		}
	}
}

func printDeadLetterJSON(w io.Writer, msg *message.Message) error {
	f, _ := middleware.FaultOf(msg.Metadata)
	rec := struct {
		UUID            string            `json:"uuid"`
		Fault           middleware.Fault  `json:"fault"`
		Metadata        map[string]string `json:"metadata"`
		Payload         string            `json:"payload,omitempty"`
		PayloadEncoding string            `json:"payload_encoding"`
	}{UUID: msg.UUID, Fault: f, Metadata: msg.Metadata, PayloadEncoding: "utf-8"}
	if utf8.Valid(msg.Payload) {
		rec.Payload = string(msg.Payload)
	} else {
		rec.Payload, rec.PayloadEncoding = base64.StdEncoding.EncodeToString(msg.Payload), "base64"
	}
	return json.NewEncoder(w).Encode(rec)
}

func preview(b []byte, n int) string {
	if !utf8.Valid(b) {
		return fmt.Sprintf("(binary) %q", truncateBytes(b, n))
	}
	s := string(b)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func truncateBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func runDLQMove(cmd *cobra.Command, f dlqFlags, topic string) error {
	ctx, b, done, err := brokerSession(cmd, f)
	if err != nil {
		return err
	}
	defer done()
	max := int64(-1) // unknown total: a spinner with a count
	if f.group != "" || b.Scheme() != "kafka" {
		if n, err := b.Count(ctx, topic, dlqapi.Query{Group: f.group, Limit: f.limit}); err == nil {
			max = int64(n)
		}
	}
	bar := progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(cmd.ErrOrStderr()),
		progressbar.OptionSetVisibility(!f.quiet),
		progressbar.OptionSetDescription("moving "+topic),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("msg"),
		progressbar.OptionThrottle(100*time.Millisecond),
		// No spinner ticker: progressbar's ticker goroutine reads the
		// bar's state without its lock (a data race with Add); the
		// spinner still turns on every Add.
		progressbar.OptionSetSpinnerChangeInterval(0),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(cmd.ErrOrStderr()) }),
	)
	res, err := b.Move(ctx, topic, dlqapi.MoveOptions{
		Group: f.group, To: f.to, Limit: f.limit, NewGroup: f.newGroup,
		Moved: func(*message.Message, string) { _ = bar.Add(1) },
	})
	_ = bar.Finish()
	out := cmd.OutOrStdout()
	targets := make([]string, 0, len(res.Moved))
	for to := range res.Moved {
		targets = append(targets, to)
	}
	sort.Strings(targets)
	for _, to := range targets {
		fmt.Fprintf(out, "moved %d message(s) to %s\n", res.Moved[to], to)
	}
	fmt.Fprintf(out, "%d dead letter(s) moved from %s\n", res.Total, topic)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return fmt.Errorf("interrupted after %d message(s) moved; the others are still on %s", res.Total, topic)
		}
		return errors.Join(fmt.Errorf("stopped after %d message(s)", res.Total), err)
	}
	return nil
}
