package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/hexeract/hexeract/adapters"
	"github.com/hexeract/hexeract/middleware"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
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
	quiet     bool
}

// logSchemes are the transports that keep messages after a consumer group
// read them (a log or stream): "dlq list" reads them with a temporary group
// and leaves them in place. The others are queues, where reading takes a
// message away: "dlq list" puts each message back at the tail.
var logSchemes = []string{"kafka", "nats", "postgres", "postgresql", "redis", "rediss"}

func newDLQCommand() *cobra.Command {
	var f dlqFlags
	dlq := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect dead-letter topics and move dead letters back to their topics",
		Long: `Dead letters are the messages Hexeract's DeadLetter middleware moved aside after
their handler failed for good; they live on "<topic>.dlq" with fault metadata
(hexeract_fault_error, _type, _handler, _topic, _attempts, _first_failure,
_last_failure, _stack) and Watermill's poison-queue keys.

The transport is a URL (--transport or $HEXERACT_TRANSPORT), any scheme
hexeract's adapters support: amqp://, kafka://, nats://, postgres://,
redis://, sqs://, mem://. --group is the consumer group whose dead letters
are read; on RabbitMQ it must be the application's group (its dead-letter
queue is "<topic>.dlq_<group>").`,
		RunE: subcommandRequired,
	}
	dlq.PersistentFlags().StringVar(&f.transport, "transport", "", "transport URL (default $"+adapters.EnvTransport+")")
	dlq.PersistentFlags().StringVar(&f.group, "group", "", "consumer group (default: the adapter's default group, \"hexeract\")")
	dlq.PersistentFlags().IntVar(&f.limit, "limit", 0, "stop after this many messages (0: no limit)")
	dlq.PersistentFlags().DurationVar(&f.wait, "wait", 3*time.Second, "stop when no message arrives for this long")

	list := &cobra.Command{
		Use:   "list DLQ-TOPIC",
		Short: "Print the dead letters of a topic with their fault details, leaving them in place",
		Long: `Prints each dead letter of DLQ-TOPIC (for example orders.dlq) with its fault
details. The messages stay where they are: on log transports (Kafka, NATS
JetStream, PostgreSQL, Redis Streams) they are read with a temporary consumer
group; on queue transports (RabbitMQ, SQS) each message read is published
again at the tail of the dead-letter topic (same UUID, payload and metadata)
before it is acknowledged, and listing stops when a message comes round a
second time.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runDLQList(cmd, f, args[0]) },
	}
	list.Flags().BoolVar(&f.jsonOut, "json", false, "print one JSON object per message")
	list.Flags().BoolVar(&f.stack, "stack", false, "print the panic stack of dead letters that have one")

	move := &cobra.Command{
		Use:   "move DLQ-TOPIC",
		Short: "Publish dead letters back to their original topic and remove them from the dead-letter topic",
		Long: `Reads the dead letters of DLQ-TOPIC with --group, publishes each one, without its
fault metadata, to its original topic (hexeract_fault_topic, or Watermill's
topic_poisoned) or to --to, and acknowledges it only after that publish
succeeded: a failure leaves the message in the dead-letter topic. Ctrl-C
stops it between messages: the one in hand is moved and acknowledged, the
counts are printed, the rest stay on DLQ-TOPIC and the exit status is 130.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runDLQMove(cmd, f, args[0]) },
	}
	move.Flags().StringVar(&f.to, "to", "", "publish to this topic instead of the original one")
	move.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "no progress bar")

	dlq.AddCommand(list, move)
	return dlq
}

func openTransport(ctx context.Context, f dlqFlags, group string) (*adapters.Transport, error) {
	var opts []adapters.Option
	if group != "" {
		opts = append(opts, adapters.WithGroup(group))
	}
	if f.transport == "" {
		return adapters.OpenFromEnv(ctx, opts...)
	}
	return adapters.Open(ctx, f.transport, opts...)
}

func transportScheme(f dlqFlags) string {
	raw := f.transport
	if raw == "" {
		raw = os.Getenv(adapters.EnvTransport)
	}
	scheme, _, _ := strings.Cut(raw, "://")
	return strings.ToLower(scheme)
}

func cmdContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// consume reads topic until fn returns stop, limit messages were handled or
// no message arrived for wait. fn acks or nacks each message itself.
//
// Cancelling ctx (Ctrl-C) stops consume between messages: the message in
// hand is finished by fn (published and acknowledged), a message received
// after the cancel is given back (nacked), and consume returns ctx's error.
// The subscription itself is not tied to ctx, so it stays open while fn
// acknowledges the message in hand; it closes when consume returns.
func consume(ctx context.Context, sub message.Subscriber, topic string, f dlqFlags, fn func(*message.Message) (stop bool, err error)) error {
	subCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	msgs, err := sub.Subscribe(subCtx, topic)
	if err != nil {
		return fmt.Errorf("subscribe to %q: %w", topic, err)
	}
	idle := time.NewTimer(f.wait)
	defer idle.Stop()
	for n := 0; f.limit == 0 || n < f.limit; n++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-idle.C:
			return nil
		case msg, ok := <-msgs:
			if !ok {
				return nil
			}
			if err := ctx.Err(); err != nil {
				msg.Nack() // arrived with the interrupt: give it back untouched
				return err
			}
			stop, err := fn(msg)
			if err != nil || stop {
				return err
			}
			idle.Reset(f.wait)
		}
	}
	return nil
}

func runDLQList(cmd *cobra.Command, f dlqFlags, topic string) error {
	ctx := cmdContext(cmd)
	logTransport := slices.Contains(logSchemes, transportScheme(f))
	group := f.group
	if logTransport {
		// A group of our own starts at the oldest message and moves no
		// other group's offset.
		group = "hexeract-dlq-list-" + uuid.NewString()[:8]
	}
	t, err := openTransport(ctx, f, group)
	if err != nil {
		return err
	}
	defer t.Close()
	out := cmd.OutOrStdout()
	seen := map[string]bool{}
	count := 0
	err = consume(ctx, t.Subscriber, topic, f, func(msg *message.Message) (bool, error) {
		if seen[msg.UUID] {
			msg.Nack() // came round again: every message was listed
			return true, nil
		}
		seen[msg.UUID] = true
		if !logTransport {
			// Reading took the message off the queue: put a copy back
			// at the tail before acknowledging this one.
			again := message.NewMessage(msg.UUID, msg.Payload)
			again.Metadata = maps(msg.Metadata)
			if err := t.Publisher.Publish(topic, again); err != nil {
				msg.Nack()
				return true, fmt.Errorf("put %s back on %q: %w", msg.UUID, topic, err)
			}
		}
		msg.Ack()
		count++
		if f.jsonOut {
			return false, printDeadLetterJSON(out, msg)
		}
		printDeadLetter(out, msg, f.stack)
		return false, nil
	})
	if !f.jsonOut {
		if err != nil && ctx.Err() != nil {
			fmt.Fprintf(out, "interrupted: %d dead letter(s) listed on %s before the interrupt\n", count, topic)
		} else if err == nil {
			fmt.Fprintf(out, "%d dead letter(s) on %s\n", count, topic)
		}
	}
	return err
}

func maps(md message.Metadata) message.Metadata {
	c := make(message.Metadata, len(md))
	for k, v := range md {
		c[k] = v
	}
	return c
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
	ctx := cmdContext(cmd)
	t, err := openTransport(ctx, f, f.group)
	if err != nil {
		return err
	}
	defer t.Close()
	max := int64(-1) // unknown total: a spinner with a count
	if f.limit > 0 {
		max = int64(f.limit)
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
	moved := map[string]int{}
	total := 0
	err = consume(ctx, t.Subscriber, topic, f, func(dead *message.Message) (bool, error) {
		msg, to, err := middleware.Revive(dead, f.to)
		if err != nil {
			dead.Nack()
			return true, fmt.Errorf("dead letter %s: %w; pass --to TOPIC", dead.UUID, err)
		}
		if to == topic {
			dead.Nack()
			return true, fmt.Errorf("dead letter %s would be moved onto %q itself", dead.UUID, topic)
		}
		if err := t.Publisher.Publish(to, msg); err != nil {
			dead.Nack()
			return true, fmt.Errorf("publish %s to %q (left in %q): %w", dead.UUID, to, topic, err)
		}
		dead.Ack()
		moved[to]++
		total++
		_ = bar.Add(1)
		return false, nil
	})
	_ = bar.Finish()
	out := cmd.OutOrStdout()
	targets := make([]string, 0, len(moved))
	for to := range moved {
		targets = append(targets, to)
	}
	sort.Strings(targets)
	for _, to := range targets {
		fmt.Fprintf(out, "moved %d message(s) to %s\n", moved[to], to)
	}
	fmt.Fprintf(out, "%d dead letter(s) moved from %s\n", total, topic)
	if err != nil && ctx.Err() != nil {
		fmt.Fprintf(out, "interrupted: the remaining dead letters stay on %s\n", topic)
		return err
	}
	if err != nil {
		return errors.Join(fmt.Errorf("stopped after %d message(s)", total), err)
	}
	return nil
}
