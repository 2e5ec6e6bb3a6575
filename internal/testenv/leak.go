package testenv

import (
	"runtime"
	"testing"
	"time"
)

// heapInUse returns the live heap after full collections.
func heapInUse() uint64 {
	var ms runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// settleGoroutines waits (up to 10 s) until at most limit goroutines run,
// and returns the count it saw last.
func settleGoroutines(limit int) int {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(10 * time.Second); n > limit && time.Now().Before(deadline); n = runtime.NumGoroutine() {
		time.Sleep(20 * time.Millisecond)
	}
	return n
}

// CheckNothingLeft runs build n times (after one warm-up run) and fails t
// when afterwards more than 5 goroutines are left over, or when the heap
// after all n runs is above the heap after the first tenth by more than
// slack bytes: what build creates and closes (an App, say) must leave
// nothing behind.
func CheckNothingLeft(t *testing.T, n int, slack uint64, build func(t testing.TB)) {
	t.Helper()
	build(t) // warm up: lazily started process-wide goroutines and caches
	baseG := settleGoroutines(0)
	var heapFirst uint64
	for i := range n {
		build(t)
		if i+1 == n/10 {
			settleGoroutines(baseG)
			heapFirst = heapInUse()
		}
	}
	const tolerance = 5
	if g := settleGoroutines(baseG + tolerance); g > baseG+tolerance {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after %d runs, %d before (tolerance %d):\n%s", g, n, baseG, tolerance, buf[:runtime.Stack(buf, true)])
	}
	heapLast := heapInUse()
	t.Logf("%d runs: goroutines %d -> %d; heap after %d runs %d KiB, after %d runs %d KiB",
		n, baseG, runtime.NumGoroutine(), n/10, heapFirst>>10, n, heapLast>>10)
	if heapLast > heapFirst+slack {
		t.Fatalf("heap grew from %d KiB after %d runs to %d KiB after %d runs (allowed: %d KiB): something keeps what was closed alive",
			heapFirst>>10, n/10, heapLast>>10, n, slack>>10)
	}
}
