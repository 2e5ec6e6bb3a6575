package scheduler_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/scheduler"
)

// TestCronDifferentJobsOnOneTable: two services share one scheduler table
// (the default name, say), each with its own cron job. Both jobs fire. The
// lease used to be one per table: whichever service held it fired only its
// own jobs, and the other service's jobs never fired while it kept renewing.
func TestCronDifferentJobsOnOneTable(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	sink := newTableSink(t, pool)
	table := "sched_" + testenv.Suffix()
	t.Cleanup(func() { dropTables(pool, table) })
	var fired [2]atomic.Int64
	for i, name := range []string{"billing-report", "cart-cleanup"} {
		s := newScheduler(t, pool, sink, table)
		err := s.Cron("* * * * * *", func(time.Time) []router.Message {
			fired[i].Add(1)
			return nil
		}, scheduler.WithCronName(name))
		if err != nil {
			t.Fatal(err)
		}
		run(t, s)
	}
	testenv.WaitFor(t, 6*time.Second, "both services' cron jobs to fire", func() bool {
		return fired[0].Load() > 0 && fired[1].Load() > 0
	})
}
