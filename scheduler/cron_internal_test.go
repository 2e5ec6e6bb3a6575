package scheduler

import (
	"testing"
	"time"

	"github.com/go-co-op/gocron/v2"
)

func TestTickAt(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		spec      string
		loc       *time.Location
		now, want time.Time
	}{
		{"*/10 * * * * *", time.UTC, time.Date(2026, 5, 1, 12, 0, 25, 1e8, time.UTC), time.Date(2026, 5, 1, 12, 0, 20, 0, time.UTC)},
		{"* * * * * *", time.UTC, time.Date(2026, 5, 1, 12, 0, 25, 3e6, time.UTC), time.Date(2026, 5, 1, 12, 0, 25, 0, time.UTC)},
		// A timer firing a hair early still maps to the tick it fires for.
		{"* * * * * *", time.UTC, time.Date(2026, 5, 1, 12, 0, 24, 999e6, time.UTC), time.Date(2026, 5, 1, 12, 0, 25, 0, time.UTC)},
		// 9:00 in New York, whatever the zone of the clock reading.
		{"0 0 9 * * *", ny, time.Date(2026, 7, 1, 13, 0, 0, 5e7, time.UTC), time.Date(2026, 7, 1, 9, 0, 0, 0, ny)},
		{"CRON_TZ=Asia/Tokyo 0 30 8 * * MON-FRI", time.UTC, time.Date(2026, 7, 1, 23, 30, 1, 0, time.UTC), time.Date(2026, 7, 1, 23, 30, 0, 0, time.UTC)},
		// A sparse schedule fired late (a slow replica) still finds its tick.
		{"@hourly", time.UTC, time.Date(2026, 7, 1, 14, 3, 0, 0, time.UTC), time.Date(2026, 7, 1, 14, 0, 0, 0, time.UTC)},
	}
	for _, c := range cases {
		j := &cronJob{spec: c.spec, schedule: gocron.NewDefaultCron(true), loc: specLocation(c.spec, c.loc)}
		if err := j.schedule.IsValid(c.spec, c.loc, c.now); err != nil {
			t.Fatalf("%q: %v", c.spec, err)
		}
		if got := j.tickAt(c.now); !got.Equal(c.want) {
			t.Errorf("tickAt(%q, %s) = %s, want %s", c.spec, c.now, got, c.want)
		}
	}
}

// TestTickAtFallBack: on the night clocks go back, 01:30 happens twice in
// New York. gocron fires a daily 01:30 job at the first one only, unless it
// (re)started in the hour between them: then it fires at the second. Both
// runs must map to the same tick, or the fired-ticks table lets the job fire
// twice that night across a restart or deploy. A job that really is due at
// both (every 15 minutes) keeps two ticks.
func TestTickAtFallBack(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	first := time.Date(2026, 11, 1, 5, 30, 0, 0, time.UTC)  // 01:30 EDT
	second := time.Date(2026, 11, 1, 6, 30, 0, 0, time.UTC) // 01:30 EST
	newJob := func(spec string) *cronJob {
		j := &cronJob{spec: spec, schedule: gocron.NewDefaultCron(true), loc: specLocation(spec, ny)}
		if err := j.schedule.IsValid(spec, ny, first.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		return j
	}
	daily := newJob("0 30 1 * * *")
	if a, b := daily.tickAt(first.Add(5e7)), daily.tickAt(second.Add(5e7)); !a.Equal(first) || !b.Equal(first) {
		t.Errorf("daily 01:30: ticks %s and %s, want both %s", a, b, first)
	}
	if got := daily.tickAt(second.Add(24 * time.Hour)); !got.Equal(second.Add(24 * time.Hour)) {
		t.Errorf("daily 01:30 the day after: tick %s", got)
	}
	quarter := newJob("0 */15 * * * *")
	if a, b := quarter.tickAt(first.Add(5e7)), quarter.tickAt(second.Add(5e7)); !a.Equal(first) || !b.Equal(second) {
		t.Errorf("every 15 minutes: ticks %s and %s, want %s and %s", a, b, first, second)
	}
}
