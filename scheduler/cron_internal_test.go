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
		j := &cronJob{spec: c.spec, schedule: gocron.NewDefaultCron(true)}
		if err := j.schedule.IsValid(c.spec, c.loc, c.now); err != nil {
			t.Fatalf("%q: %v", c.spec, err)
		}
		if got := j.tickAt(c.now); !got.Equal(c.want) {
			t.Errorf("tickAt(%q, %s) = %s, want %s", c.spec, c.now, got, c.want)
		}
	}
}
