package middleware

import (
	"testing"
	"time"
)

// TestBackoffBounds checks every wait against its bounds: the exponential
// interval w = min(initial·mult^(n−1), max) and w·(1±jitter), capped at max.
func TestBackoffBounds(t *testing.T) {
	p, err := RetryPolicy{InitialInterval: 100 * time.Millisecond, MaxInterval: 2 * time.Second, Multiplier: 2, Jitter: 0.5}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{100, 200, 400, 800, 1600, 2000, 2000}
	for i, base := range want {
		n := i + 1
		base *= time.Millisecond
		if got := p.interval(n); got != base {
			t.Errorf("interval(%d) = %v, want %v", n, got, base)
		}
		lo, hi := time.Duration(float64(base)*0.5), min(time.Duration(float64(base)*1.5), p.MaxInterval)
		for _, r := range []float64{0, 0.25, 0.5, 0.75, 0.999999} {
			w := p.wait(n, r)
			if w < lo || w > hi {
				t.Errorf("wait(%d, %v) = %v, outside [%v, %v]", n, r, w, lo, hi)
			}
		}
		if p.wait(n, 0) != lo {
			t.Errorf("wait(%d, 0) = %v, want the lower bound %v", n, p.wait(n, 0), lo)
		}
	}
	if got := p.interval(10_000); got != p.MaxInterval {
		t.Errorf("interval overflows: %v", got)
	}
	def, _ := RetryPolicy{}.withDefaults()
	if def.MaxAttempts != DefaultMaxAttempts || def.Jitter != DefaultJitter || def.InitialInterval != DefaultInitialInterval {
		t.Errorf("zero policy defaults = %+v", def)
	}
}
