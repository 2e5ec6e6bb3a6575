package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"
)

// producerKinds are the message types the producer commits; the saga's
// own messages (capture, captured) have ids the producer never sees and are
// checked through the saga table and the effects instead.
const producerKinds = `('e2e.order.placed', 'e2e.payment.requested', 'e2e.order.reminder')`

// report is the reconciliation of one campaign, read from the database.
type report struct {
	transport                     string // the campaign's name
	store                         string // the store's dialect
	plan                          plan
	committed, rolledBack         int64
	txRolledBack                  int64
	byKind                        map[string]int64
	delivered, applied            int64 // distinct producer messages
	deliveries                    int64 // every delivery recorded, duplicates included
	lost, phantom, rolledBackSeen int64
	dupDelivered, dupApplied      int64
	sagasStarted, sagasCompleted  int64
	outboxLeft, outboxDead        int64
	scheduledLeft                 int64
	selfExits                     int
	recoveries                    []recovery
	drained                       time.Duration
	logBytes                      int64 // process log bytes scanned for the password
}

type recovery struct {
	fault  string
	outage time.Duration
	took   time.Duration // -1 when no message committed after the fault was applied
}

func (c *campaign) reconcile() *report {
	t := c.t
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := c.prefix
	r := &report{transport: c.name, store: string(c.store), plan: c.plan, byKind: map[string]int64{}, selfExits: c.selfExits}
	q := func(dst *int64, sql string) {
		if err := c.sqldb.QueryRowContext(ctx, sql).Scan(dst); err != nil {
			t.Fatalf("reconcile %q: %v", sql, err)
		}
	}
	q(&r.committed, `SELECT count(*) FROM `+p+`_committed`)
	q(&r.rolledBack, `SELECT count(*) FROM `+p+`_rolledback`)
	q(&r.txRolledBack, `SELECT count(*) FROM `+p+`_rolledback WHERE kind = 'e2e.order.placed'`)
	q(&r.delivered, `SELECT count(DISTINCT msg_id) FROM `+p+`_deliveries WHERE kind IN `+producerKinds)
	q(&r.deliveries, `SELECT count(*) FROM `+p+`_deliveries`)
	q(&r.applied, `SELECT count(DISTINCT msg_id) FROM `+p+`_effects WHERE kind IN `+producerKinds)
	// Lost: committed but never applied.
	q(&r.lost, `SELECT count(*) FROM `+p+`_committed c WHERE NOT EXISTS (SELECT 1 FROM `+p+`_effects e WHERE e.msg_id = c.msg_id)`)
	// Phantom: delivered (producer types) but never committed.
	q(&r.phantom, `SELECT count(DISTINCT d.msg_id) FROM `+p+`_deliveries d WHERE d.kind IN `+producerKinds+
		` AND NOT EXISTS (SELECT 1 FROM `+p+`_committed c WHERE c.msg_id = d.msg_id)`)
	q(&r.rolledBackSeen, `SELECT count(*) FROM `+p+`_rolledback b WHERE EXISTS (SELECT 1 FROM `+p+`_deliveries d WHERE d.msg_id = b.msg_id)`)
	q(&r.dupDelivered, `SELECT count(*) - count(DISTINCT msg_id) FROM `+p+`_deliveries`)
	q(&r.dupApplied, `SELECT (SELECT count(*) FROM `+p+`_effects) - (SELECT count(*) FROM (SELECT DISTINCT msg_id, kind FROM `+p+`_effects) d)`)
	q(&r.sagasStarted, `SELECT count(*) FROM `+p+`_sagas WHERE saga = 'payment'`)
	q(&r.sagasCompleted, `SELECT count(*) FROM `+p+`_sagas WHERE saga = 'payment' AND status = 'completed'`)
	q(&r.outboxLeft, `SELECT count(*) FROM `+p+`_outbox`)
	q(&r.outboxDead, `SELECT count(*) FROM `+p+`_outbox_dead`)
	q(&r.scheduledLeft, `SELECT count(*) FROM `+p+`_sched`)
	rows, err := c.sqldb.QueryContext(ctx, `SELECT kind, count(*) FROM `+p+`_committed GROUP BY kind ORDER BY kind`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatal(err)
		}
		r.byKind[k] = n
	}
	rows.Close()
	// Recovery: from the fault to the first effect of a message committed
	// after it, that is until traffic flows end to end again.
	for _, f := range c.faults {
		var ms sql.NullFloat64
		err := c.sqldb.QueryRowContext(ctx, c.query(`SELECT min(`+c.ms("e.at")+`) - ? FROM `+p+`_effects e JOIN `+p+
			`_committed c ON c.msg_id = e.msg_id WHERE `+c.ms("c.at")+` > ?`), f.at, f.at).Scan(&ms)
		if err != nil {
			t.Fatal(err)
		}
		took := time.Duration(-1)
		if ms.Valid {
			took = time.Duration(ms.Float64 * float64(time.Millisecond))
		}
		r.recoveries = append(r.recoveries, recovery{fault: f.kind, outage: f.outage, took: took})
	}
	return r
}

// check fails the test for any broken promise.
func (r *report) check(t *testing.T) {
	t.Helper()
	if r.committed == 0 {
		t.Errorf("%s: nothing committed", r.transport)
	}
	if r.lost != 0 {
		t.Errorf("%s: %d committed messages lost (never applied)", r.transport, r.lost)
	}
	if r.phantom != 0 || r.rolledBackSeen != 0 {
		t.Errorf("%s: %d phantom deliveries, %d rolled-back messages delivered", r.transport, r.phantom, r.rolledBackSeen)
	}
	if r.dupApplied != 0 {
		t.Errorf("%s: %d duplicate effects applied behind the inbox", r.transport, r.dupApplied)
	}
	if r.sagasCompleted != r.byKind["e2e.payment.requested"] {
		t.Errorf("%s: %d payment sagas completed, %d requested", r.transport, r.sagasCompleted, r.byKind["e2e.payment.requested"])
	}
	if r.outboxLeft != 0 || r.outboxDead != 0 || r.scheduledLeft != 0 {
		t.Errorf("%s: left behind: %d outbox rows, %d dead outbox rows, %d scheduled", r.transport, r.outboxLeft, r.outboxDead, r.scheduledLeft)
	}
	if r.rolledBack == 0 {
		t.Errorf("%s: no transaction was rolled back; the campaign must roll back about 10%%", r.transport)
	}
	for _, rc := range r.recoveries {
		if rc.took < 0 {
			t.Errorf("%s: no message committed after %q was applied", r.transport, rc.fault)
		}
	}
}

func (r *report) String() string {
	var b strings.Builder
	if r.store == "" || r.store == "postgres" {
		fmt.Fprintf(&b, "\n== %s ==\n", r.transport)
	} else {
		db := map[string]string{"mysql": "MariaDB, store/mysql", "sqlite": "SQLite file, store/sqlite"}[r.store]
		fmt.Fprintf(&b, "\n== %s (%s) ==\n", r.transport, db)
	}
	fmt.Fprintf(&b, "producer transactions     %7d committed, %d rolled back on purpose (%d/s)\n", r.byKind["e2e.order.placed"], r.txRolledBack, r.plan.rate)
	fmt.Fprintf(&b, "messages committed        %7d  (order.placed %d, payment.requested %d, order.reminder scheduled %d)\n",
		r.committed, r.byKind["e2e.order.placed"], r.byKind["e2e.payment.requested"], r.byKind["e2e.order.reminder"])
	fmt.Fprintf(&b, "messages rolled back      %7d  (delivered: %d)\n", r.rolledBack, r.rolledBackSeen)
	fmt.Fprintf(&b, "messages delivered        %7d  distinct producer messages (%d deliveries in all, saga messages included)\n", r.delivered, r.deliveries)
	fmt.Fprintf(&b, "messages applied          %7d  distinct producer messages\n", r.applied)
	fmt.Fprintf(&b, "lost                      %7d  (must be 0)\n", r.lost)
	fmt.Fprintf(&b, "phantom                   %7d  (must be 0)\n", r.phantom)
	fmt.Fprintf(&b, "duplicates delivered      %7d\n", r.dupDelivered)
	fmt.Fprintf(&b, "duplicates applied        %7d  (must be 0)\n", r.dupApplied)
	fmt.Fprintf(&b, "payment sagas completed   %7d / %d started\n", r.sagasCompleted, r.sagasStarted)
	fmt.Fprintf(&b, "left in outbox/dead/sched %d/%d/%d\n", r.outboxLeft, r.outboxDead, r.scheduledLeft)
	fmt.Fprintf(&b, "processes that exited by themselves and were restarted: %d\n", r.selfExits)
	fmt.Fprintf(&b, "process logs scanned for the DSN password: %d bytes, 0 hits\n", r.logBytes)
	fmt.Fprintf(&b, "drained %s after the producer finished\n", r.drained.Round(10*time.Millisecond))
	b.WriteString("recovery after each fault (from the fault, or from the end of a restart, to the first\n" +
		"effect of a message committed after it):\n")
	for _, rc := range r.recoveries {
		took := "never"
		if rc.took >= 0 {
			took = rc.took.Round(time.Millisecond).String()
		}
		fault := rc.fault
		if rc.outage > 0 {
			fault += fmt.Sprintf(" (stop+start %s)", rc.outage.Round(10*time.Millisecond))
		}
		fmt.Fprintf(&b, "  %-44s %s\n", fault, took)
	}
	return b.String()
}
