package scheduler

import "github.com/hexeract/hexeract/store"

// SimulateCrash makes Run return without releasing the cron lease, as if the
// process had died: the other replicas must wait for the lease to expire.
func SimulateCrash[TTx any](s *Scheduler[TTx]) { s.stopHook = func() {} }

// Channel returns the LISTEN/NOTIFY channel of s.
func Channel[TTx any](s *Scheduler[TTx]) string { return s.t.channel }

// Exec returns the pool executor of s's driver, for tests that schedule
// outside a transaction.
func Exec[TTx any](s *Scheduler[TTx]) store.Executor { return s.drv.Executor() }
