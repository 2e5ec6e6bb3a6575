package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/deadletter"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/store"
)

// RunDeadLetter runs the tests of the dead-letter store (package
// deadletter) on the driver: writes, filters, groups, reads that change
// nothing, dry runs, retries that terminate with each message retried once
// even when its handler keeps failing, concurrent retries, edits and the
// audit trail. Retries go into a test outbox table written in the retry's
// transaction (through Driver.TxOf), as the real outbox does.
func RunDeadLetter[TTx any](t *testing.T, h Harness[TTx]) {
	t.Run("WriteListFilterGroupsShow", func(t *testing.T) { t.Parallel(); testDLWriteList(t, h) })
	t.Run("ReadsAndDryRunsChangeNothing", func(t *testing.T) { t.Parallel(); testDLReadsChangeNothing(t, h) })
	t.Run("RetryStillFailingTerminatesOnce", func(t *testing.T) { t.Parallel(); testDLRetryStillFailing(t, h) })
	t.Run("ConcurrentRetriesOnce", func(t *testing.T) { t.Parallel(); testDLConcurrentRetries(t, h) })
	t.Run("EditThenRetry", func(t *testing.T) { t.Parallel(); testDLEditRetry(t, h) })
	t.Run("DeleteGroupAndAudit", func(t *testing.T) { t.Parallel(); testDLDeleteGroup(t, h) })
	t.Run("OutboxFailureRollsBack", func(t *testing.T) { t.Parallel(); testDLOutboxFails(t, h) })
	t.Run("InterruptedBulkRetryExactlyOnce", func(t *testing.T) { t.Parallel(); testDLInterrupted(t, h) })
	t.Run("CustomTableAndUpsertID", func(t *testing.T) { t.Parallel(); testDLCustomTable(t, h) })
}

func testDLCustomTable[TTx any](t *testing.T, h Harness[TTx]) {
	ctx := context.Background()
	d := h.OpenFresh(t)
	s, err := deadletter.New(d, deadletter.WithTable("custom_dl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	rec := DeadLetterRecord("u1", "orders", "ship", "t", "x", time.Now())
	id1, err := s.WriteWith(ctx, d.Executor(), rec)
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.WriteWith(ctx, d.Executor(), DeadLetterRecord("u2", "orders", "ship", "t", "x", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	rec.Fault.Error = "y"
	id2, err := s.WriteWith(ctx, d.Executor(), rec)
	if err != nil {
		t.Fatal(err)
	}
	if id1 == 0 || id2 != id1 || other == id1 {
		t.Fatalf("ids: first write %d, second write of the same message %d, other message %d; want the same row for the same message", id1, id2, other)
	}
	if got, err := s.Show(ctx, id1); err != nil || got.Fault.Error != "y" {
		t.Fatalf("the second write did not overwrite: %+v %v", got, err)
	}
	// The same message failing in another handler is another dead letter.
	rec.Fault.Handler = "bill"
	if id3, err := s.WriteWith(ctx, d.Executor(), rec); err != nil || id3 == id1 {
		t.Fatalf("another handler's failure: id %d (first %d), %v", id3, id1, err)
	}
	if _, err := s.Delete(ctx, deadletter.Selection{All: true}, deadletter.MutateOptions{Operator: "op"}); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, h, d, "SELECT COUNT(*) FROM custom_dl_audit"); n != 1 {
		t.Fatalf("%d rows in custom_dl_audit", n)
	}
	if n := queryInt(t, h, d, "SELECT COUNT(*) FROM custom_dl"); n != 0 {
		t.Fatalf("%d rows left in custom_dl", n)
	}
	if _, err := deadletter.New(d, deadletter.WithTable("bad name")); err == nil {
		t.Fatal("a table name with a space was accepted")
	}
}

// testDLInterrupted cancels a retry of 1,000 dead letters in the middle (as
// SIGINT does in the CLI): the transaction in hand finishes, and every
// message is either still dead or in the outbox, exactly once, as many in
// the outbox as the result and the audit row say.
func testDLInterrupted[TTx any](t *testing.T, h Harness[TTx]) {
	ctx := context.Background()
	e := freshDL(t, h)
	const n = 1000
	now := time.Now()
	err := e.d.InTx(ctx, func(ctx context.Context, tx TTx) error {
		ex := e.d.UnwrapTx(tx)
		for i := range n {
			if _, err := e.s.WriteWith(ctx, ex, DeadLetterRecord(fmt.Sprintf("i%04d", i), "orders", "ship", "t", "boom", now)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res, err := e.s.Retry(cctx, deadletter.Selection{All: true}, deadletter.MutateOptions{Operator: "op", BatchSize: 3, Progress: func(done int) {
		if done >= 300 {
			cancel()
		}
	}})
	if err == nil || !errors.Is(err, context.Canceled) || !res.Interrupted {
		t.Fatalf("Retry cancelled mid-way = %+v, %v; want an interruption", res, err)
	}
	if res.Done < 300 || res.Done >= n || res.Done%3 != 0 {
		t.Fatalf("done %d: want the batches committed before the cancellation, at least 300", res.Done)
	}
	if o := e.outboxCount(t, ""); o != int64(res.Done) {
		t.Fatalf("%d outbox rows, result says %d", o, res.Done)
	}
	for i := range n {
		id := fmt.Sprintf("i%04d", i)
		if o, d := e.outboxCount(t, id), e.deadCount(t, id); o+d != 1 {
			t.Fatalf("%s: %d in the outbox, %d dead; want exactly one of them", id, o, d)
		}
	}
	audit, _ := e.s.Audit(ctx, 1)
	if len(audit) != 1 || audit[0].Count != int64(res.Done) || audit[0].Outcome != "interrupted" {
		t.Fatalf("audit = %+v", audit)
	}
}

// dlNoteKey is a metadata key of the tests' own: the edit test sets it and
// the test outbox records it.
const dlNoteKey = "note"

// DLTestOutboxTable is the table TestOutbox writes retried messages to.
const DLTestOutboxTable = "dl_test_outbox"

// TestOutbox is a deadletter.Outbox that writes each message as a row of
// DLTestOutboxTable (id, topic, payload, retries, note) in the caller's
// transaction, through the driver's TxOf: a stand-in for the real outbox
// with the same transactional behaviour.
type TestOutbox[TTx any] struct {
	H   Harness[TTx]
	Drv store.Driver[TTx]
	// Fail, when set, makes the publish of the message with this id fail.
	Fail string
	// Signals counts the calls of Signal.
	Signals atomic.Int64
}

// Signal counts a wake-up, as the real outbox's wakes its relays.
func (o *TestOutbox[TTx]) Signal() { o.Signals.Add(1) }

// CreateTestOutbox creates DLTestOutboxTable.
func CreateTestOutbox[TTx any](t testing.TB, h Harness[TTx], d store.Driver[TTx]) {
	t.Helper()
	err := d.InTx(context.Background(), func(ctx context.Context, tx TTx) error {
		return h.Exec(ctx, tx, "CREATE TABLE "+DLTestOutboxTable+
			" (id VARCHAR(255) NOT NULL, topic VARCHAR(255) NOT NULL, payload TEXT NOT NULL, retries VARCHAR(16) NOT NULL, note VARCHAR(255) NOT NULL)")
	})
	if err != nil {
		t.Fatal(err)
	}
}

// PublishMessagesWith writes msgs in ex's transaction.
func (o *TestOutbox[TTx]) PublishMessagesWith(ctx context.Context, ex store.Executor, topic string, msgs ...*message.Message) error {
	tx, ok := o.Drv.TxOf(ex)
	if !ok {
		return errors.New("TestOutbox: the executor is not a transaction of this driver")
	}
	for _, m := range msgs {
		if m.UUID == o.Fail {
			return fmt.Errorf("TestOutbox: refusing %s", m.UUID)
		}
		if err := o.H.Exec(ctx, tx, q(o.Drv, "INSERT INTO "+DLTestOutboxTable+" (id, topic, payload, retries, note) VALUES (?, ?, ?, ?, ?)"),
			m.UUID, topic, string(m.Payload), m.Metadata.Get(router.KeyDeadLetterRetries), m.Metadata.Get(dlNoteKey)); err != nil {
			return err
		}
	}
	return nil
}

// q turns ? placeholders into $n for PostgreSQL.
func q(d store.Store, sql string) string {
	if d.Dialect() != store.Postgres {
		return sql
	}
	var b strings.Builder
	n := 0
	for _, r := range sql {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// queryInt runs a query returning one integer.
func queryInt[TTx any](t testing.TB, h Harness[TTx], d store.Driver[TTx], sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := d.InTx(context.Background(), func(ctx context.Context, tx TTx) error {
		var err error
		n, err = h.QueryInt(ctx, tx, q(d, sql), args...)
		return err
	}); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

type dlEnv[TTx any] struct {
	h  Harness[TTx]
	d  store.Driver[TTx]
	ob *TestOutbox[TTx]
	s  *deadletter.Store
}

func newDLEnv[TTx any](t testing.TB, h Harness[TTx], url string) *dlEnv[TTx] {
	t.Helper()
	d := h.Open(t, url)
	ob := &TestOutbox[TTx]{H: h, Drv: d}
	s, err := deadletter.New(d, deadletter.WithOutbox(ob))
	if err != nil {
		t.Fatal(err)
	}
	return &dlEnv[TTx]{h: h, d: d, ob: ob, s: s}
}

func freshDL[TTx any](t testing.TB, h Harness[TTx]) *dlEnv[TTx] {
	t.Helper()
	e := newDLEnv(t, h, h.URL(t))
	if err := e.s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Migrate(context.Background()); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	CreateTestOutbox(t, h, e.d)
	return e
}

// DeadLetterRecord returns a dead-letter record for tests.
func DeadLetterRecord(id, topic, handler, faultType, errText string, at time.Time) middleware.DeadLetterRecord {
	m := message.NewMessage(id, []byte(`{"n":"`+id+`"}`))
	m.Metadata[router.KeyType] = "test.v1"
	return middleware.DeadLetterRecord{
		Message: m,
		Fault: middleware.Fault{Error: errText, Type: faultType, Handler: handler, Topic: topic, Attempts: 3,
			FirstFailure: at.Add(-time.Second), LastFailure: at},
		Group: "grp",
	}
}

func (e *dlEnv[TTx]) write(t testing.TB, recs ...middleware.DeadLetterRecord) {
	t.Helper()
	for _, r := range recs {
		if err := e.s.Write(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *dlEnv[TTx]) outboxCount(t testing.TB, id string) int64 {
	t.Helper()
	if id == "" {
		return queryInt(t, e.h, e.d, "SELECT COUNT(*) FROM "+DLTestOutboxTable)
	}
	return queryInt(t, e.h, e.d, "SELECT COUNT(*) FROM "+DLTestOutboxTable+" WHERE id = ?", id)
}

func (e *dlEnv[TTx]) deadCount(t testing.TB, id string) int64 {
	t.Helper()
	if id == "" {
		return queryInt(t, e.h, e.d, "SELECT COUNT(*) FROM "+deadletter.DefaultTable)
	}
	return queryInt(t, e.h, e.d, "SELECT COUNT(*) FROM "+deadletter.DefaultTable+" WHERE message_id = ?", id)
}

func testDLWriteList[TTx any](t *testing.T, h Harness[TTx]) {
	ctx := context.Background()
	e := freshDL(t, h)
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	e.write(t,
		DeadLetterRecord("a1", "orders", "ship", "*errors.errorString", "db down: Connection Refused", base),
		DeadLetterRecord("a2", "orders", "ship", "*errors.errorString", "db down again", base),
		DeadLetterRecord("a3", "orders", "bill", "panic", "panic: nil map 50% _x", base),
		DeadLetterRecord("b1", "payments", "charge", "*net.OpError", "dial tcp: timeout", base),
	)
	// A redelivered copy (the ack of the first write was lost) is not doubled.
	e.write(t, DeadLetterRecord("a1", "orders", "ship", "*errors.errorString", "db down: Connection Refused", base))
	all, err := e.s.List(ctx, deadletter.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 {
		t.Fatalf("List = %d rows, want 4 (the redelivered copy overwrites)", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID <= all[i-1].ID {
			t.Fatalf("List not in id order: %d after %d", all[i].ID, all[i-1].ID)
		}
	}
	a1 := all[0]
	if a1.Message.UUID != "a1" || string(a1.Message.Payload) != `{"n":"a1"}` || a1.Message.Metadata.Get(router.KeyType) != "test.v1" ||
		a1.Topic != "orders" || a1.Handler != "ship" || a1.Group != "grp" || a1.Attempts != 3 || a1.Fault.Error != "db down: Connection Refused" ||
		a1.Fault.Type != "*errors.errorString" || !a1.LastFailedAt.Equal(base) || !a1.FirstFailedAt.Equal(base.Add(-time.Second)) || a1.DeadAt.IsZero() {
		t.Fatalf("a1 read back as %+v (fault %+v, metadata %v)", a1, a1.Fault, a1.Message.Metadata)
	}
	ids := func(ds []*deadletter.DeadLetter) string {
		var s []string
		for _, d := range ds {
			s = append(s, d.Message.UUID)
		}
		return strings.Join(s, ",")
	}
	for name, c := range map[string]struct {
		f    deadletter.Filter
		want string
	}{
		"topic":         {deadletter.Filter{Topic: "orders"}, "a1,a2,a3"},
		"handler":       {deadletter.Filter{Handler: "ship"}, "a1,a2"},
		"fault type":    {deadletter.Filter{FaultType: "panic"}, "a3"},
		"error no case": {deadletter.Filter{ErrorContains: "connection refused"}, "a1"},
		"error literal": {deadletter.Filter{ErrorContains: "50% _"}, "a3"},
		"no match %":    {deadletter.Filter{ErrorContains: "5_%"}, ""},
		"since":         {deadletter.Filter{Since: time.Now().Add(time.Hour)}, ""},
		"until":         {deadletter.Filter{Until: time.Now().Add(time.Hour), Topic: "payments"}, "b1"},
		"limit":         {deadletter.Filter{Limit: 2}, "a1,a2"},
		"after":         {deadletter.Filter{AfterID: all[1].ID, Limit: 1}, "a3"},
		"combined":      {deadletter.Filter{Topic: "orders", Handler: "ship", ErrorContains: "AGAIN"}, "a2"},
	} {
		got, err := e.s.List(ctx, c.f)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if ids(got) != c.want {
			t.Errorf("%s: List(%+v) = %q, want %q", name, c.f, ids(got), c.want)
		}
	}
	counts, err := e.s.Counts(ctx, deadletter.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != 2 || counts[0].Topic != "orders" || counts[0].Count != 3 || counts[1].Topic != "payments" || counts[1].Count != 1 ||
		counts[0].OldestAge <= 0 || counts[0].Oldest.IsZero() {
		t.Fatalf("Counts = %+v", counts)
	}
	groups, err := e.s.Groups(ctx, deadletter.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 3 || groups[0].FaultType != "*errors.errorString" || groups[0].Handler != "ship" || groups[0].Count != 2 ||
		!groups[0].FirstSeen.Equal(base.Add(-time.Second)) || !groups[0].LastSeen.Equal(base) || groups[0].Example != "db down again" {
		t.Fatalf("Groups = %+v", groups)
	}
	k, err := deadletter.ParseGroupKey(groups[0].String())
	if err != nil || k != groups[0].GroupKey {
		t.Fatalf("ParseGroupKey(%q) = %+v, %v", groups[0].String(), k, err)
	}
	got, err := e.s.Show(ctx, all[3].ID)
	if err != nil || got.Message.UUID != "b1" || got.Topic != "payments" {
		t.Fatalf("Show = %+v, %v", got, err)
	}
	if _, err := e.s.Show(ctx, 999999); !errors.Is(err, deadletter.ErrNotFound) {
		t.Fatalf("Show of a missing id: %v, want ErrNotFound", err)
	}
	st, err := e.s.SchemaStatus(ctx)
	if err != nil || len(st) == 0 || st[0].Pending() {
		t.Fatalf("SchemaStatus = %+v, %v", st, err)
	}
}

// dlSnapshot is everything a read must leave as it was.
type dlSnapshot struct {
	Rows       []store.DeadLetterRow
	Audit      []store.DeadLetterAudit
	Outbox     int64
	Dead       int64
	AuditCount int64
	Migrations int64
}

func (e *dlEnv[TTx]) snapshot(t testing.TB) dlSnapshot {
	t.Helper()
	ctx := context.Background()
	rows, err := e.d.Executor().DeadLetterList(ctx, store.DeadLetterTable{Table: deadletter.DefaultTable}, store.DeadLetterFilter{})
	if err != nil {
		t.Fatal(err)
	}
	audit, err := e.d.Executor().DeadLetterAuditList(ctx, store.DeadLetterTable{Table: deadletter.DefaultTable}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return dlSnapshot{
		Rows: rows, Audit: audit, Outbox: e.outboxCount(t, ""), Dead: e.deadCount(t, ""),
		AuditCount: queryInt(t, e.h, e.d, "SELECT COUNT(*) FROM "+deadletter.DefaultTable+"_audit"),
		Migrations: queryInt(t, e.h, e.d, "SELECT COUNT(*) FROM "+store.MigrationTable),
	}
}

func testDLReadsChangeNothing[TTx any](t *testing.T, h Harness[TTx]) {
	ctx := context.Background()
	e := freshDL(t, h)
	now := time.Now().UTC()
	e.write(t, DeadLetterRecord("r1", "orders", "ship", "t1", "boom", now), DeadLetterRecord("r2", "orders", "bill", "t2", "bang", now))
	// One mutation first, so the audit table is not empty either.
	if _, err := e.s.Delete(ctx, deadletter.Selection{Filter: deadletter.Filter{Handler: "nobody"}}, deadletter.MutateOptions{Operator: "t"}); err != nil {
		t.Fatal(err)
	}
	before := e.snapshot(t)
	if before.Dead != 2 || before.AuditCount != 1 {
		t.Fatalf("setup: %+v", before)
	}
	all, _ := e.s.List(ctx, deadletter.Filter{})
	reads := map[string]func() error{
		"List":         func() error { _, err := e.s.List(ctx, deadletter.Filter{Topic: "orders"}); return err },
		"Counts":       func() error { _, err := e.s.Counts(ctx, deadletter.Filter{}); return err },
		"Groups":       func() error { _, err := e.s.Groups(ctx, deadletter.Filter{}); return err },
		"Show":         func() error { _, err := e.s.Show(ctx, all[0].ID); return err },
		"Audit":        func() error { _, err := e.s.Audit(ctx, 0); return err },
		"SchemaStatus": func() error { _, err := e.s.SchemaStatus(ctx); return err },
		"RetryDryRun": func() error {
			r, err := e.s.Retry(ctx, deadletter.Selection{All: true}, deadletter.MutateOptions{DryRun: true})
			if err == nil && (r.Selected != 2 || r.Done != 0 || len(r.IDs) != 2) {
				err = fmt.Errorf("dry run result %+v", r)
			}
			return err
		},
		"DeleteDryRun": func() error {
			_, err := e.s.Delete(ctx, deadletter.Selection{Group: &deadletter.GroupKey{FaultType: "t1", Handler: "ship"}}, deadletter.MutateOptions{DryRun: true})
			return err
		},
		"EditDryRun": func() error {
			_, err := e.s.Edit(ctx, all[0].ID, deadletter.Edit{Payload: []byte("x"), Retry: true}, deadletter.MutateOptions{DryRun: true})
			return err
		},
	}
	for name, read := range reads {
		if err := read(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if after := e.snapshot(t); !reflect.DeepEqual(before, after) {
			t.Fatalf("%s changed the database:\nbefore %+v\nafter  %+v", name, before, after)
		}
	}
	// A store on a database without the tables reads nothing and creates nothing.
	bare := newDLEnv(t, h, h.URL(t))
	if _, err := bare.s.SchemaStatus(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := bare.s.List(ctx, deadletter.Filter{}); err == nil {
		t.Fatal("List on a database without the table succeeded")
	}
	if st, _ := bare.s.SchemaStatus(ctx); len(st) == 0 || !st[0].Pending() {
		t.Fatalf("a read created the tables: %+v", st)
	}
}

func testDLRetryStillFailing[TTx any](t *testing.T, h Harness[TTx]) {
	ctx := context.Background()
	e := freshDL(t, h)
	const n = 20
	now := time.Now().UTC()
	for i := range n {
		e.write(t, DeadLetterRecord(fmt.Sprintf("m%02d", i), "orders", "ship", "t", "boom", now))
	}
	old, err := e.s.List(ctx, deadletter.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	maxOld := old[len(old)-1].ID
	// The handler still fails: each message the retry hands to the outbox
	// is consumed at once and dead-lettered again (a new row, same id).
	consumed := 0
	res, err := e.s.Retry(ctx, deadletter.Selection{All: true}, deadletter.MutateOptions{
		Operator: "oncall",
		Progress: func(done int) {
			for ; consumed < done; consumed++ {
				rec := DeadLetterRecord(fmt.Sprintf("m%02d", consumed), "orders", "ship", "t", "boom again", time.Now())
				rec.Message.Metadata[router.KeyDeadLetterRetries] = "1"
				if err := e.s.Write(ctx, rec); err != nil {
					t.Error(err)
				}
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Selected != n || res.Done != n || res.Interrupted {
		t.Fatalf("Retry = %+v, want %d selected and done", res, n)
	}
	if s := e.ob.Signals.Load(); s != n {
		t.Fatalf("the outbox was signalled %d times, want once per committed transaction (%d)", s, n)
	}
	for i := range n {
		id := fmt.Sprintf("m%02d", i)
		if o, d := e.outboxCount(t, id), e.deadCount(t, id); o != 1 || d != 1 {
			t.Errorf("%s: %d outbox row(s), %d dead row(s); want 1 and 1 (retried once, failed again once)", id, o, d)
		}
	}
	again, err := e.s.List(ctx, deadletter.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range again {
		if d.Retries != 1 || d.Fault.Error != "boom again" || d.ID <= maxOld {
			t.Fatalf("the new failure of %s: id %d (old rows up to %d), retries %d, error %q; want a new row", d.Message.UUID, d.ID, maxOld, d.Retries, d.Fault.Error)
		}
	}
	if r := queryInt(t, e.h, e.d, "SELECT COUNT(*) FROM "+DLTestOutboxTable+" WHERE retries = '1'"); r != n {
		t.Fatalf("%d outbox rows carry retries=1, want %d", r, n)
	}
	audit, err := e.s.Audit(ctx, 0)
	if err != nil || len(audit) != 1 || audit[0].Action != "retry" || audit[0].Count != n || audit[0].Operator != "oncall" || audit[0].Outcome != "done" ||
		audit[0].ID != res.AuditID {
		t.Fatalf("audit = %+v, %v", audit, err)
	}
}

func testDLConcurrentRetries[TTx any](t *testing.T, h Harness[TTx]) {
	ctx := context.Background()
	url := h.URL(t)
	e1 := newDLEnv(t, h, url)
	e2 := newDLEnv(t, h, url)
	if err := e1.s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	CreateTestOutbox(t, h, e1.d)
	const n = 60
	for i := range n {
		e1.write(t, DeadLetterRecord(fmt.Sprintf("c%02d", i), "orders", "ship", "t", "boom", time.Now()))
	}
	var wg sync.WaitGroup
	results := make([]deadletter.Result, 2)
	errs := make([]error, 2)
	for i, e := range []*dlEnv[TTx]{e1, e2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = e.s.Retry(ctx, deadletter.Selection{Filter: deadletter.Filter{Topic: "orders"}}, deadletter.MutateOptions{Operator: fmt.Sprint("op", i), BatchSize: 7})
		}()
	}
	wg.Wait()
	for i := range errs {
		if errs[i] != nil {
			t.Fatalf("retry %d: %v", i, errs[i])
		}
	}
	if results[0].Done+results[1].Done != n {
		t.Fatalf("two concurrent retries did %d and %d, want %d in all", results[0].Done, results[1].Done, n)
	}
	for i := range n {
		if c := e1.outboxCount(t, fmt.Sprintf("c%02d", i)); c != 1 {
			t.Errorf("c%02d in the outbox %d times", i, c)
		}
	}
	if d := e1.deadCount(t, ""); d != 0 {
		t.Fatalf("%d dead rows left", d)
	}
}

func testDLEditRetry[TTx any](t *testing.T, h Harness[TTx]) {
	ctx := context.Background()
	e := freshDL(t, h)
	e.write(t, DeadLetterRecord("e1", "orders", "ship", "t", "bad field", time.Now()), DeadLetterRecord("e2", "orders", "ship", "t", "bad field", time.Now()))
	all, _ := e.s.List(ctx, deadletter.Filter{})
	// Edit alone, then retry.
	if _, err := e.s.Edit(ctx, all[0].ID, deadletter.Edit{Payload: []byte(`{"fixed":1}`), Set: map[string]string{dlNoteKey: "fixed by hand"}, Unset: []string{router.KeyType}},
		deadletter.MutateOptions{Operator: "ann"}); err != nil {
		t.Fatal(err)
	}
	d, err := e.s.Show(ctx, all[0].ID)
	if err != nil || string(d.Message.Payload) != `{"fixed":1}` || d.Message.Metadata.Get(dlNoteKey) != "fixed by hand" || d.Message.Metadata.Get(router.KeyType) != "" {
		t.Fatalf("after Edit: %+v %v", d, err)
	}
	if e.outboxCount(t, "") != 0 {
		t.Fatal("Edit without Retry wrote to the outbox")
	}
	if _, err := e.s.Retry(ctx, deadletter.Selection{ID: all[0].ID}, deadletter.MutateOptions{Operator: "ann"}); err != nil {
		t.Fatal(err)
	}
	// Edit and retry in one transaction.
	if _, err := e.s.Edit(ctx, all[1].ID, deadletter.Edit{Payload: []byte(`{"fixed":2}`), Set: map[string]string{dlNoteKey: "n2"}, Retry: true},
		deadletter.MutateOptions{Operator: "bob"}); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"e1": `{"fixed":1}|fixed by hand`, "e2": `{"fixed":2}|n2`} {
		got := queryInt(t, e.h, e.d, "SELECT COUNT(*) FROM "+DLTestOutboxTable+" WHERE id = ? AND payload = ? AND note = ?", id,
			strings.Split(want, "|")[0], strings.Split(want, "|")[1])
		if got != 1 {
			t.Errorf("%s: the outbox row does not carry the edit %s", id, want)
		}
	}
	if e.deadCount(t, "") != 0 {
		t.Fatal("edited and retried dead letters still in the table")
	}
	audit, _ := e.s.Audit(ctx, 0)
	var actions []string
	for _, a := range audit {
		actions = append(actions, fmt.Sprintf("%s:%s:%d:%s", a.Operator, a.Action, a.Count, a.Outcome))
	}
	if got := strings.Join(actions, " "); got != "bob:edit+retry:1:done ann:retry:1:done ann:edit:1:done" {
		t.Fatalf("audit = %s", got)
	}
	if _, err := e.s.Edit(ctx, all[0].ID, deadletter.Edit{Set: map[string]string{router.KeyFaultError: "x"}}, deadletter.MutateOptions{}); err == nil {
		t.Fatal("Edit set a fault key")
	}
	if _, err := e.s.Edit(ctx, 424242, deadletter.Edit{Payload: []byte("x")}, deadletter.MutateOptions{}); !errors.Is(err, deadletter.ErrNotFound) {
		t.Fatalf("Edit of a missing id: %v", err)
	}
}

func testDLDeleteGroup[TTx any](t *testing.T, h Harness[TTx]) {
	ctx := context.Background()
	e := freshDL(t, h)
	now := time.Now().UTC()
	e.write(t,
		DeadLetterRecord("d1", "orders", "ship", "t1", "x", now), DeadLetterRecord("d2", "orders", "ship", "t1", "x", now),
		DeadLetterRecord("d3", "orders", "", "t1", "x", now), DeadLetterRecord("d4", "orders", "ship", "t2", "x", now))
	if _, err := e.s.Delete(ctx, deadletter.Selection{}, deadletter.MutateOptions{}); err == nil {
		t.Fatal("Delete with an empty selection (no All) was accepted")
	}
	res, err := e.s.Delete(ctx, deadletter.Selection{Group: &deadletter.GroupKey{FaultType: "t1", Handler: ""}}, deadletter.MutateOptions{Operator: "op"})
	if err != nil || res.Done != 1 {
		t.Fatalf("delete group t1@'' = %+v, %v; want the one row without handler", res, err)
	}
	res, err = e.s.Delete(ctx, deadletter.Selection{Group: &deadletter.GroupKey{FaultType: "t1", Handler: "ship"}}, deadletter.MutateOptions{Operator: "op"})
	if err != nil || res.Done != 2 {
		t.Fatalf("delete group = %+v, %v", res, err)
	}
	left, _ := e.s.List(ctx, deadletter.Filter{})
	if len(left) != 1 || left[0].Message.UUID != "d4" {
		t.Fatalf("left %d rows", len(left))
	}
	if e.outboxCount(t, "") != 0 {
		t.Fatal("Delete wrote to the outbox")
	}
	audit, _ := e.s.Audit(ctx, 1)
	if len(audit) != 1 || audit[0].Action != "delete" || audit[0].Count != 2 || !strings.Contains(audit[0].Selector, `"t1"`) {
		t.Fatalf("audit = %+v", audit)
	}
}

func testDLOutboxFails[TTx any](t *testing.T, h Harness[TTx]) {
	ctx := context.Background()
	e := freshDL(t, h)
	e.write(t, DeadLetterRecord("f1", "orders", "ship", "t", "x", time.Now()), DeadLetterRecord("f2", "orders", "ship", "t", "x", time.Now()),
		DeadLetterRecord("f3", "orders", "ship", "t", "x", time.Now()))
	e.ob.Fail = "f2"
	res, err := e.s.Retry(ctx, deadletter.Selection{All: true}, deadletter.MutateOptions{Operator: "op", BatchSize: 1})
	if err == nil || res.Done != 1 {
		t.Fatalf("Retry with a failing outbox = %+v, %v; want an error after 1", res, err)
	}
	for id, want := range map[string][2]int64{"f1": {1, 0}, "f2": {0, 1}, "f3": {0, 1}} {
		if o, d := e.outboxCount(t, id), e.deadCount(t, id); o != want[0] || d != want[1] {
			t.Errorf("%s: outbox %d dead %d, want %v", id, o, d, want)
		}
	}
	audit, _ := e.s.Audit(ctx, 1)
	if len(audit) != 1 || audit[0].Count != 1 || !strings.HasPrefix(audit[0].Outcome, "failed") {
		t.Fatalf("audit = %+v", audit)
	}
	if _, err := (func() (deadletter.Result, error) {
		s, _ := deadletter.New(e.d)
		return s.Retry(ctx, deadletter.Selection{All: true}, deadletter.MutateOptions{})
	})(); !errors.Is(err, deadletter.ErrNoOutbox) {
		t.Fatalf("Retry without outbox: %v", err)
	}
}
