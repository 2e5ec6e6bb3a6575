package scheduler_test

import (
	"testing"
	"time"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/scheduler"
)

// TestCronTickInSpecZone: produce gets the tick in the zone the spec is
// evaluated in, so tick.Hour() or tick.Format("2006-01-02") in a job that
// runs at 00:30 Paris time give the Paris hour and date. The tick used to
// be in the process's local zone: on a UTC server, the 00:30 Paris job saw
// 22:30 or 23:30 of the day before.
func TestCronTickInSpecZone(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	sink := newTableSink(t, pool)
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	s := newScheduler(t, pool, sink, "", scheduler.WithLocation(paris), scheduler.WithLeaseTTL(time.Second))
	zones := make(chan [2]string, 10)
	produce := func(name string) func(time.Time) []router.Message {
		return func(tick time.Time) []router.Message {
			select {
			case zones <- [2]string{name, tick.Location().String()}:
			default:
			}
			return nil
		}
	}
	if err := s.Cron("* * * * * *", produce("default"), scheduler.WithCronName("default-zone")); err != nil {
		t.Fatal(err)
	}
	if err := s.Cron("CRON_TZ=Asia/Tokyo * * * * * *", produce("tokyo"), scheduler.WithCronName("own-zone")); err != nil {
		t.Fatal(err)
	}
	run(t, s)
	want := map[string]string{"default": "Europe/Paris", "tokyo": "Asia/Tokyo"}
	seen := map[string]bool{}
	deadline := time.After(8 * time.Second)
	for len(seen) < 2 {
		select {
		case z := <-zones:
			if z[1] != want[z[0]] {
				t.Fatalf("job %s: tick in zone %q, want %q", z[0], z[1], want[z[0]])
			}
			seen[z[0]] = true
		case <-deadline:
			t.Fatalf("ticks seen for %v within 8s; want both jobs", seen)
		}
	}
}
