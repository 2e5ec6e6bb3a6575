package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/hexeract/hexeract/deadletter"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/storeurl"
)

// storedFlags are the flags of "hexeract dlq stored" and its subcommands.
type storedFlags struct {
	table       string
	outboxTable string
	topic       string
	handler     string
	faultType   string
	errText     string
	since       string
	until       string
	after       int64
	faultGroup  string
	all         bool
	jsonOut     bool
	stack       bool
	dryRun      bool
	yes         bool
	operator    string
	quiet       bool
	// edit
	payload     string
	payloadFile string
	set         []string
	unset       []string
	retry       bool
}

// newDLQStoredCommand builds "hexeract dlq stored" and its subcommands: the
// dead-letter store in the database (package deadletter).
func newDLQStoredCommand() *cobra.Command {
	var f storedFlags
	stored := &cobra.Command{
		Use:   "stored",
		Short: "Dead letters kept in the database (the dead-letter store): list, counts, groups, show, retry, edit, delete, audit",
		Long: `Dead letters the DeadLetter middleware wrote to the database's dead-letter table
(middleware.DeadLetterOptions.Store, package deadletter) instead of a broker
topic. The database is --database-url or $HEXERACT_DATABASE_URL: postgres://,
mysql:// or sqlite:///path.db. --transport and --group do not apply here.

Reads (list, counts, groups, show, audit) change nothing in the database.

Mutations (retry, edit, delete) take what they act on as one of: an ID
argument, --fault-group FAULT-TYPE@HANDLER (as "groups" prints it), filter
flags (--topic, --handler, --fault-type, --error, --since, --until, --limit),
or --all. Each one:
  - with --dry-run, prints what it would do and changes nothing;
  - on more than one dead letter, asks for confirmation unless --yes;
  - writes one audit row (operator, action, selection, count, outcome) to the
    audit table and prints it as one line;
  - works on the dead letters selected when it starts, once: a retried
    message that fails again becomes a new dead letter (retries + 1) that
    this run does not touch.
A retry deletes each dead letter and writes its message into the outbox
(--outbox-table) in one transaction: the relay publishes it to its original
topic; nothing is lost or doubled.

SIGINT or SIGTERM: the dead letter in hand is finished, the audit line and the
summary are printed, and the command exits non-zero (130).`,
		RunE: subcommandRequired,
	}
	pf := stored.PersistentFlags()
	pf.StringVar(&f.table, "table", deadletter.DefaultTable, "dead-letter table (its audit table is TABLE_audit)")

	addFilters := func(c *cobra.Command) {
		c.Flags().StringVar(&f.topic, "topic", "", "only dead letters of this original topic")
		c.Flags().StringVar(&f.handler, "handler", "", "only dead letters of this handler")
		c.Flags().StringVar(&f.faultType, "fault-type", "", "only this fault type (Go error type, or panic)")
		c.Flags().StringVar(&f.errText, "error", "", "only dead letters whose error text contains this, without case")
		c.Flags().StringVar(&f.since, "since", "", "only dead letters dead at or after this time (RFC 3339, or a duration ago: 2h)")
		c.Flags().StringVar(&f.until, "until", "", "only dead letters dead before this time (RFC 3339, or a duration ago)")
	}
	addMutation := func(c *cobra.Command) {
		c.Flags().BoolVar(&f.dryRun, "dry-run", false, "print what would be done and change nothing")
		c.Flags().BoolVarP(&f.yes, "yes", "y", false, "do not ask for confirmation")
		c.Flags().StringVar(&f.operator, "operator", "", "who runs this, for the audit row (default $USER)")
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "Print the stored dead letters the filters select, oldest first",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runStoredList(cmd, f) },
	}
	addFilters(list)
	list.Flags().Int64Var(&f.after, "after", 0, "only ids above this one (paging: the last id printed)")
	list.Flags().BoolVar(&f.jsonOut, "json", false, "print one JSON object per dead letter")
	list.Flags().BoolVar(&f.stack, "stack", false, "print the panic stack of dead letters that have one")

	counts := &cobra.Command{
		Use:   "counts",
		Short: "Print the number of stored dead letters per original topic, with the oldest one's age",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runStoredCounts(cmd, f) },
	}
	addFilters(counts)
	counts.Flags().BoolVar(&f.jsonOut, "json", false, "print JSON")

	groups := &cobra.Command{
		Use:   "groups",
		Short: "Print the stored dead letters grouped by fault type and handler, largest group first",
		Long: `Prints one line per group of failures (fault type and handler) with its count,
first and last failure, the group's key for --fault-group, and the newest
error text.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runStoredGroups(cmd, f) },
	}
	addFilters(groups)
	groups.Flags().BoolVar(&f.jsonOut, "json", false, "print JSON")

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Print one stored dead letter with its whole payload",
		Args:  cobra.ExactArgs(1),
		RunE:  func(cmd *cobra.Command, args []string) error { return runStoredShow(cmd, f, args[0]) },
	}
	show.Flags().BoolVar(&f.jsonOut, "json", false, "print JSON")

	retry := &cobra.Command{
		Use:   "retry [ID]",
		Short: "Move dead letters back to their original topic through the outbox (one transaction each)",
		Args:  cobra.MaximumNArgs(1),
		RunE:  func(cmd *cobra.Command, args []string) error { return runStoredMutation(cmd, f, "retry", args) },
	}
	addFilters(retry)
	addMutation(retry)
	retry.Flags().StringVar(&f.faultGroup, "fault-group", "", "the group FAULT-TYPE@HANDLER, as groups prints it")
	retry.Flags().BoolVar(&f.all, "all", false, "every dead letter (when no filter is given)")
	retry.Flags().StringVar(&f.outboxTable, "outbox-table", outbox.DefaultTable, "the outbox table the messages are written to")
	retry.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "no progress line")

	del := &cobra.Command{
		Use:   "delete [ID]",
		Short: "Delete dead letters for good",
		Args:  cobra.MaximumNArgs(1),
		RunE:  func(cmd *cobra.Command, args []string) error { return runStoredMutation(cmd, f, "delete", args) },
	}
	addFilters(del)
	addMutation(del)
	del.Flags().StringVar(&f.faultGroup, "fault-group", "", "the group FAULT-TYPE@HANDLER, as groups prints it")
	del.Flags().BoolVar(&f.all, "all", false, "every dead letter (when no filter is given)")
	del.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "no progress line")

	edit := &cobra.Command{
		Use:   "edit ID",
		Short: "Change a dead letter's payload or metadata, and with --retry retry it in the same transaction",
		Args:  cobra.ExactArgs(1),
		RunE:  func(cmd *cobra.Command, args []string) error { return runStoredEdit(cmd, f, args[0]) },
	}
	addMutation(edit)
	edit.Flags().StringVar(&f.payload, "payload", "", "the new payload")
	edit.Flags().StringVar(&f.payloadFile, "payload-file", "", "read the new payload from this file (- for stdin)")
	edit.Flags().StringArrayVar(&f.set, "set", nil, "set metadata KEY=VALUE (repeatable)")
	edit.Flags().StringArrayVar(&f.unset, "unset", nil, "remove metadata KEY (repeatable)")
	edit.Flags().BoolVar(&f.retry, "retry", false, "retry the edited dead letter in the same transaction")
	edit.Flags().StringVar(&f.outboxTable, "outbox-table", outbox.DefaultTable, "the outbox table --retry writes to")

	audit := &cobra.Command{
		Use:   "audit",
		Short: "Print the audit trail of the dead-letter store, newest first",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runStoredAudit(cmd, f) },
	}
	audit.Flags().BoolVar(&f.jsonOut, "json", false, "print JSON")

	stored.AddCommand(list, counts, groups, show, retry, edit, del, audit)
	return stored
}

// openStored opens the dead-letter store of --database-url. withOutbox
// builds the outbox retries write to.
func openStored(cmd *cobra.Command, f storedFlags, withOutbox bool) (*deadletter.Store, func(), error) {
	var u string
	if fl := cmd.Flag("database-url"); fl != nil {
		u = fl.Value.String()
	}
	if u == "" {
		u = os.Getenv("HEXERACT_DATABASE_URL")
	}
	if u == "" {
		return nil, nil, errors.New("no database: pass --database-url or set HEXERACT_DATABASE_URL (postgres://, mysql://, sqlite:///path.db)")
	}
	if _, err := deadletter.CheckTable(storeurl.Dialect(u), f.table); err != nil {
		return nil, nil, err
	}
	st, err := storeurl.Open(cmd.Context(), u)
	if err != nil {
		return nil, nil, err
	}
	closers := []func(){func() { _ = st.Close() }}
	done := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	opts := []deadletter.Option{deadletter.WithTable(f.table)}
	if withOutbox {
		ob, closeOb, err := storedRetryOutbox(st, f.outboxTable)
		if err != nil {
			done()
			return nil, nil, err
		}
		closers = append(closers, closeOb)
		opts = append(opts, deadletter.WithOutbox(ob))
	}
	s, err := deadletter.New(st, opts...)
	if err != nil {
		done()
		return nil, nil, err
	}
	// A read of a table that does not exist is an error naming the fix,
	// and creates nothing.
	status, err := s.SchemaStatus(cmd.Context())
	if err != nil {
		done()
		return nil, nil, err
	}
	for _, m := range status {
		if m.Pending() {
			done()
			return nil, nil, fmt.Errorf("the dead-letter table %s is not (fully) created in %s: the App's Migrate creates it (deadletter.Store.Migrate)",
				f.table, store.RedactURL(u))
		}
	}
	return s, done, nil
}

func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: want RFC 3339 (2026-01-02T15:04:05Z) or a duration ago (90m)", s)
	}
	return t, nil
}

func (f storedFlags) filter(cmd *cobra.Command) (deadletter.Filter, error) {
	now := time.Now()
	since, err := parseWhen(f.since, now)
	if err != nil {
		return deadletter.Filter{}, err
	}
	until, err := parseWhen(f.until, now)
	if err != nil {
		return deadletter.Filter{}, err
	}
	limit, _ := cmd.Flags().GetInt("limit") // the dlq command's persistent --limit
	return deadletter.Filter{Topic: f.topic, Handler: f.handler, FaultType: f.faultType, ErrorContains: f.errText,
		Since: since, Until: until, AfterID: f.after, Limit: limit}, nil
}

func runStoredList(cmd *cobra.Command, f storedFlags) error {
	s, done, err := openStored(cmd, f, false)
	if err != nil {
		return err
	}
	defer done()
	flt, err := f.filter(cmd)
	if err != nil {
		return err
	}
	// Page through the table, so a large one is never held in memory.
	const page = 500
	out := cmd.OutOrStdout()
	total, limit := 0, flt.Limit
	for {
		flt.Limit = page
		if limit > 0 {
			flt.Limit = min(page, limit-total)
		}
		ds, err := s.List(cmd.Context(), flt)
		if err != nil {
			return err
		}
		for _, d := range ds {
			if f.jsonOut {
				if err := printStoredJSON(out, d); err != nil {
					return err
				}
				continue
			}
			printStored(out, d, f.stack, 200)
		}
		total += len(ds)
		if len(ds) < flt.Limit || (limit > 0 && total >= limit) {
			break
		}
		flt.AfterID = ds[len(ds)-1].ID
		if err := cmd.Context().Err(); err != nil {
			return fmt.Errorf("interrupted after listing %d dead letter(s): %w", total, err)
		}
	}
	if !f.jsonOut {
		fmt.Fprintf(out, "%d dead letter(s) in %s\n", total, s.Table())
	}
	return nil
}

func printStored(w io.Writer, d *deadletter.DeadLetter, stack bool, maxPayload int) {
	fmt.Fprintf(w, "#%d  %s  from %s  handler %s", d.ID, d.Message.UUID, orDash(d.Topic), orDash(d.Handler))
	if d.Group != "" {
		fmt.Fprintf(w, "  group %s", d.Group)
	}
	fmt.Fprintf(w, "  attempts %d", d.Attempts)
	if d.Retries > 0 {
		fmt.Fprintf(w, "  retried %d time(s) before", d.Retries)
	}
	if d.Fault.Permanent {
		fmt.Fprint(w, "  permanent")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  type:   %s\n", orDash(d.Fault.Type))
	fmt.Fprintf(w, "  error:  %s\n", orDash(d.Fault.Error))
	fmt.Fprintf(w, "  failed: %s .. %s, dead since %s\n", d.FirstFailedAt.Format(time.RFC3339Nano), d.LastFailedAt.Format(time.RFC3339Nano),
		d.DeadAt.Format(time.RFC3339Nano))
	keys := make([]string, 0, len(d.Message.Metadata))
	for k := range d.Message.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %s: %s\n", k, d.Message.Metadata[k])
	}
	fmt.Fprintf(w, "  payload (%d bytes): %s\n", len(d.Message.Payload), preview(d.Message.Payload, maxPayload))
	if stack && d.Fault.Stack != "" {
		fmt.Fprintln(w, "  stack:")
		for _, frame := range strings.Split(d.Fault.Stack, " | ") {
			fmt.Fprintf(w, "    %s\n", frame)
		}
	}
}

func printStoredJSON(w io.Writer, d *deadletter.DeadLetter) error {
	rec := struct {
		*deadletter.DeadLetter
		UUID            string            `json:"uuid"`
		Metadata        map[string]string `json:"metadata"`
		Payload         string            `json:"payload"`
		PayloadEncoding string            `json:"payload_encoding"`
	}{DeadLetter: d, UUID: d.Message.UUID, Metadata: d.Message.Metadata, PayloadEncoding: "utf-8"}
	if utf8.Valid(d.Message.Payload) {
		rec.Payload = string(d.Message.Payload)
	} else {
		rec.Payload, rec.PayloadEncoding = base64.StdEncoding.EncodeToString(d.Message.Payload), "base64"
	}
	return json.NewEncoder(w).Encode(rec)
}

func runStoredCounts(cmd *cobra.Command, f storedFlags) error {
	s, done, err := openStored(cmd, f, false)
	if err != nil {
		return err
	}
	defer done()
	flt, err := f.filter(cmd)
	if err != nil {
		return err
	}
	cs, err := s.Counts(cmd.Context(), flt)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if f.jsonOut {
		return json.NewEncoder(out).Encode(cs)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tDEAD\tOLDEST\tOLDEST AGE")
	var total int64
	for _, c := range cs {
		total += c.Count
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", c.Topic, c.Count, c.Oldest.Format(time.RFC3339), c.OldestAge.Round(time.Second))
	}
	_ = tw.Flush()
	fmt.Fprintf(out, "%d dead letter(s) in %s\n", total, s.Table())
	return nil
}

func runStoredGroups(cmd *cobra.Command, f storedFlags) error {
	s, done, err := openStored(cmd, f, false)
	if err != nil {
		return err
	}
	defer done()
	flt, err := f.filter(cmd)
	if err != nil {
		return err
	}
	gs, err := s.Groups(cmd.Context(), flt)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if f.jsonOut {
		return json.NewEncoder(out).Encode(gs)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COUNT\tFAULT TYPE\tHANDLER\tFIRST SEEN\tLAST SEEN\tGROUP KEY\tNEWEST ERROR")
	for _, g := range gs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", g.Count, orDash(g.FaultType), orDash(g.Handler), g.FirstSeen.Format(time.RFC3339),
			g.LastSeen.Format(time.RFC3339), g.String(), preview([]byte(g.Example), 80))
	}
	_ = tw.Flush()
	fmt.Fprintf(out, "%d group(s)\n", len(gs))
	return nil
}

func parseID(s string) (int64, error) {
	id, err := strconv.ParseInt(strings.TrimPrefix(s, "#"), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("dead-letter id %q: want the number list prints after #", s)
	}
	return id, nil
}

func runStoredShow(cmd *cobra.Command, f storedFlags, arg string) error {
	id, err := parseID(arg)
	if err != nil {
		return err
	}
	s, done, err := openStored(cmd, f, false)
	if err != nil {
		return err
	}
	defer done()
	d, err := s.Show(cmd.Context(), id)
	if err != nil {
		return err
	}
	if f.jsonOut {
		return printStoredJSON(cmd.OutOrStdout(), d)
	}
	printStored(cmd.OutOrStdout(), d, true, len(d.Message.Payload)+1)
	return nil
}

func runStoredAudit(cmd *cobra.Command, f storedFlags) error {
	s, done, err := openStored(cmd, f, false)
	if err != nil {
		return err
	}
	defer done()
	limit, _ := cmd.Flags().GetInt("limit")
	as, err := s.Audit(cmd.Context(), limit)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if f.jsonOut {
		return json.NewEncoder(out).Encode(as)
	}
	for _, a := range as {
		fmt.Fprintf(out, "#%d  %s  %s  %s %d  %s  selection %s\n", a.ID, a.At.Format(time.RFC3339), a.Operator, a.Action, a.Count, a.Outcome, a.Selector)
	}
	return nil
}

func operatorName(f storedFlags) string {
	if f.operator != "" {
		return f.operator
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "unknown"
}

// selection builds the selection of a retry or delete from its argument and
// flags: exactly one of an id, --fault-group, filter flags or --all.
func (f storedFlags) selection(cmd *cobra.Command, args []string) (deadletter.Selection, error) {
	flt, err := f.filter(cmd)
	if err != nil {
		return deadletter.Selection{}, err
	}
	var sel deadletter.Selection
	n := 0
	if len(args) == 1 {
		if sel.ID, err = parseID(args[0]); err != nil {
			return sel, err
		}
		n++
	}
	if f.faultGroup != "" {
		k, err := deadletter.ParseGroupKey(f.faultGroup)
		if err != nil {
			return sel, err
		}
		sel.Group = &k
		n++
	}
	if flt != (deadletter.Filter{}) {
		sel.Filter = flt
		n++
	}
	if f.all {
		if flt != (deadletter.Filter{}) {
			return sel, errors.New("--all selects every dead letter: drop it or the filter flags")
		}
		sel.All = true
		n++
	}
	switch {
	case n == 0:
		return sel, errors.New("say which dead letters: an ID, --fault-group, filter flags (--topic, --handler, --fault-type, --error, --since, --until) or --all")
	case n > 1:
		return sel, errors.New("give one of: an ID, --fault-group, filter flags or --all")
	}
	return sel, nil
}

// confirm asks the operator to confirm a mutation of n dead letters and
// reports whether they said yes.
func confirm(cmd *cobra.Command, question string) bool {
	fmt.Fprintf(cmd.ErrOrStderr(), "%s [y/N] ", question)
	line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}

func runStoredMutation(cmd *cobra.Command, f storedFlags, action string, args []string) error {
	sel, err := f.selection(cmd, args)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	s, done, err := openStored(cmd, f, action == "retry" && !f.dryRun)
	if err != nil {
		return err
	}
	defer done()
	op := operatorName(f)
	run := s.Delete
	if action == "retry" {
		run = s.Retry
	}
	out := cmd.OutOrStdout()
	if f.dryRun || (sel.ID == 0 && !f.yes) {
		plan, err := run(ctx, sel, deadletter.MutateOptions{Operator: op, DryRun: true})
		if err != nil {
			return err
		}
		if f.dryRun {
			fmt.Fprintln(out, plan.Line(op, sel))
			return nil
		}
		if plan.Selected == 0 {
			fmt.Fprintf(out, "no dead letter selected; nothing to %s\n", action)
			return nil
		}
		if !confirm(cmd, fmt.Sprintf("%s %d dead letter(s) of %s?", action, plan.Selected, s.Table())) {
			return fmt.Errorf("%s not confirmed: nothing changed (pass --yes to skip the question)", action)
		}
	}
	progress := func(int) {}
	if !f.quiet {
		last := time.Now()
		progress = func(n int) {
			if time.Since(last) >= time.Second {
				last = time.Now()
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %d done\n", action, n)
			}
		}
	}
	res, err := run(ctx, sel, deadletter.MutateOptions{Operator: op, Progress: progress})
	if res.AuditID != 0 {
		fmt.Fprintln(out, res.Line(op, sel))
	}
	return summarize(ctx, out, action, res, err)
}

// summarize prints what a mutation did and turns an interruption into an
// error saying so.
func summarize(ctx context.Context, out io.Writer, action string, res deadletter.Result, err error) error {
	fmt.Fprintf(out, "%d of %d dead letter(s) %s\n", res.Done, res.Selected, map[string]string{"retry": "retried", "delete": "deleted", "edit": "edited", "edit+retry": "edited and retried"}[action])
	if err != nil {
		if res.Interrupted || ctx.Err() != nil {
			return fmt.Errorf("interrupted after %d of %d dead letter(s); the others are still in the dead-letter table", res.Done, res.Selected)
		}
		return err
	}
	return nil
}

func runStoredEdit(cmd *cobra.Command, f storedFlags, arg string) error {
	id, err := parseID(arg)
	if err != nil {
		return err
	}
	e := deadletter.Edit{Retry: f.retry, Unset: f.unset}
	switch {
	case f.payload != "" && f.payloadFile != "":
		return errors.New("give --payload or --payload-file, not both")
	case f.payload != "":
		e.Payload = []byte(f.payload)
	case f.payloadFile == "-":
		if e.Payload, err = io.ReadAll(cmd.InOrStdin()); err != nil {
			return err
		}
	case f.payloadFile != "":
		if e.Payload, err = os.ReadFile(f.payloadFile); err != nil {
			return err
		}
	}
	if len(f.set) > 0 {
		e.Set = map[string]string{}
		for _, kv := range f.set {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return fmt.Errorf("--set %q: want KEY=VALUE", kv)
			}
			if middleware.IsFaultKey(k) {
				return fmt.Errorf("--set %q: fault keys are not message metadata", kv)
			}
			e.Set[k] = v
		}
	}
	ctx := cmd.Context()
	s, done, err := openStored(cmd, f, f.retry && !f.dryRun)
	if err != nil {
		return err
	}
	defer done()
	op := operatorName(f)
	res, err := s.Edit(ctx, id, e, deadletter.MutateOptions{Operator: op, DryRun: f.dryRun})
	if f.dryRun && err == nil {
		fmt.Fprintln(cmd.OutOrStdout(), res.Line(op, deadletter.Selection{ID: id}))
		return nil
	}
	if res.AuditID != 0 {
		fmt.Fprintln(cmd.OutOrStdout(), res.Line(op, deadletter.Selection{ID: id}))
	}
	return summarize(ctx, cmd.OutOrStdout(), res.Action, res, err)
}
