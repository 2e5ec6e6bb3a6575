package scheduler

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/go-co-op/gocron/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/store"
)

// Metadata keys set on every message a cron job produces; they are defined
// in package router (router/keys.go), with every other metadata key.
const (
	// Deprecated: use router.KeyCronJob.
	KeyCronJob = router.KeyCronJob
	// Deprecated: use router.KeyCronTick.
	KeyCronTick = router.KeyCronTick
)

// CronOption configures one cron job.
type CronOption func(*cronJob)

// WithCronName names a cron job. The name identifies the job across replicas
// (ticks are recorded under it), so it must be the same in every replica and
// unique within the scheduler. The default is the spec itself.
func WithCronName(name string) CronOption { return func(j *cronJob) { j.name = name } }

// CronName is the former name of [WithCronName].
//
// Deprecated: use WithCronName.
func CronName(name string) CronOption { return WithCronName(name) }

type cronJob struct {
	name     string
	spec     string
	schedule gocron.Cron
	loc      *time.Location // the zone the spec is evaluated in
	produce  func(tick time.Time) []router.Message
}

// Cron registers a cron job: at every tick of spec, produce is called with the
// tick time (in the zone the spec is evaluated in) and the messages it
// returns are handed to the sink. spec has six
// fields, seconds first ("*/10 * * * * *" is every ten seconds; "0 30 9 * * MON-FRI"
// is 9:30 on weekdays; five fields are minute-precision), or a descriptor
// such as "@hourly" ("@every" is refused: its ticks are not anchored to the
// clock, so replicas could not agree on them); it is evaluated in
// the scheduler's location ([WithLocation]) unless it starts with
// "CRON_TZ=Zone/Name ". An invalid spec is an error that quotes it.
//
// Each tick fires once across all replicas running this scheduler's tables:
// only the replica holding the lease (a row with an expiry) fires (a gocron Elector; one
// lease per set of job names, so Schedulers with other jobs on the same table
// do not starve each other; the lease passes to another replica within the
// lease TTL when the holder dies),
// and the tick is recorded in the fired-ticks table in the same transaction
// that hands the messages to the sink, so even two replicas that both believe
// they lead cannot fire one tick twice. A tick missed while no replica
// leads (during a failover) is not fired later.
//
// Register jobs before [Scheduler.Run]; produce runs on gocron's goroutines,
// one tick of a job at a time.
func (s *Scheduler[TTx]) Cron(spec string, produce func(tick time.Time) []router.Message, opts ...CronOption) error {
	if produce == nil {
		return fmt.Errorf("scheduler: cron %q: nil produce function", spec)
	}
	j := &cronJob{name: spec, spec: spec, produce: produce}
	for _, opt := range opts {
		opt(j)
	}
	if j.name == "" {
		return fmt.Errorf("scheduler: cron %q: empty job name", spec)
	}
	if strings.Contains(spec, "@every") {
		return fmt.Errorf("scheduler: invalid cron spec %q: @every ticks are not anchored to the clock, so replicas cannot agree on them; use a spec such as \"*/30 * * * * *\"", spec)
	}
	j.schedule = gocron.NewDefaultCron(true)
	if err := j.schedule.IsValid(spec, s.cfg.location, time.Now()); err != nil {
		return fmt.Errorf("scheduler: invalid cron spec %q: %v (want six fields with seconds first, e.g. \"0 */5 * * * *\", or a descriptor such as \"@hourly\")", spec, err)
	}
	j.loc = specLocation(spec, s.cfg.location)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return fmt.Errorf("scheduler: cron %q registered after Run started; register cron jobs before Run", j.name)
	}
	if s.jobs[j.name] {
		return fmt.Errorf("scheduler: a cron job named %q is already registered; give the second one another name with scheduler.WithCronName", j.name)
	}
	if s.cron == nil {
		c, err := gocron.NewScheduler(
			gocron.WithLocation(s.cfg.location),
			gocron.WithDistributedElector(s.elector),
		)
		if err != nil {
			return fmt.Errorf("scheduler: cron: %w", err)
		}
		s.cron = c
	}
	_, err := s.cron.NewJob(
		gocron.CronJob(spec, true),
		gocron.NewTask(func(ctx context.Context) { s.fire(ctx, j) }),
		gocron.WithName(j.name),
		gocron.WithSingletonMode(gocron.LimitModeReschedule),
	)
	if err != nil {
		return fmt.Errorf("scheduler: invalid cron spec %q: %w", spec, err)
	}
	s.jobs[j.name] = true
	s.elector.name = cronLeaseName(s.jobs)
	return nil
}

// tickSlack absorbs timer jitter when finding the tick a run belongs to.
const tickSlack = 200 * time.Millisecond

// tickAt returns the latest tick of the job at or before now (+ slack): the
// tick gocron is firing. Replicas whose clocks differ by less than half the
// period agree on it.
func (j *cronJob) tickAt(now time.Time) time.Time {
	limit := now.Add(tickSlack)
	for _, window := range []time.Duration{time.Minute, time.Hour, 48 * time.Hour, 400 * 24 * time.Hour} {
		t := j.schedule.Next(now.Add(-window))
		if t.IsZero() || t.After(limit) {
			continue
		}
		for {
			next := j.schedule.Next(t)
			if next.IsZero() || next.After(limit) {
				return j.firstOccurrence(t)
			}
			t = next
		}
	}
	return now.Truncate(time.Second)
}

// firstOccurrence maps the second occurrence of a wall-clock time repeated
// when the clocks go back (01:30 EST after 01:30 EDT) to the first, when the
// first is the tick just before it: gocron fires only one of the two (the
// first, or the second when it started in between), so the fired-ticks
// table must see them as one tick.
func (j *cronJob) firstOccurrence(t time.Time) time.Time {
	if j.loc == nil {
		return t
	}
	wall := t.In(j.loc)
	for _, d := range []time.Duration{30 * time.Minute, time.Hour, 2 * time.Hour} {
		p := t.Add(-d)
		pw := p.In(j.loc)
		if pw.Year() == wall.Year() && pw.YearDay() == wall.YearDay() && pw.Hour() == wall.Hour() &&
			pw.Minute() == wall.Minute() && pw.Second() == wall.Second() &&
			j.schedule.Next(p.Add(-time.Second)).Equal(p) && j.schedule.Next(p).Equal(t) {
			return p
		}
	}
	return t
}

// specLocation is the zone a cron spec is evaluated in: its own CRON_TZ= or
// TZ= prefix (as gocron reads it), else def.
func specLocation(spec string, def *time.Location) *time.Location {
	for _, prefix := range []string{"CRON_TZ=", "TZ="} {
		if rest, ok := strings.CutPrefix(spec, prefix); ok {
			name, _, _ := strings.Cut(rest, " ")
			if loc, err := time.LoadLocation(name); err == nil {
				return loc
			}
		}
	}
	return def
}

// fire records the tick and hands the job's messages to the sink in one
// transaction; a tick already recorded by another replica is skipped.
func (s *Scheduler[TTx]) fire(ctx context.Context, j *cronJob) {
	tick := j.tickAt(time.Now())
	fired := false
	err := store.RunInTx(ctx, s.drv, func(ctx context.Context, tx store.ExecutorTx) error {
		first, err := tx.SchedulerFireTick(ctx, s.t.st, j.name, tick, s.cfg.instanceID, tick.Add(-24*time.Hour))
		if err != nil || !first {
			return err // !first: another replica fired this tick
		}
		msgs := j.produce(tick.In(j.loc))
		byTopic := map[string][]*message.Message{}
		var order []string
		for _, m := range msgs {
			if m == nil {
				return errors.New("produce returned a nil message")
			}
			wm, err := router.NewMessage(ctx, m, router.EncodeOptions{Codec: s.cfg.codec, Source: s.cfg.source})
			if err != nil {
				return fmt.Errorf("encode %s: %w", m.MessageType(), err)
			}
			wm.Metadata.Set(router.KeyCronJob, j.name)
			wm.Metadata.Set(router.KeyCronTick, tick.UTC().Format(time.RFC3339Nano))
			topic := s.cfg.topic(m.MessageType())
			if _, ok := byTopic[topic]; !ok {
				order = append(order, topic)
			}
			byTopic[topic] = append(byTopic[topic], wm)
		}
		for _, topic := range order {
			if err := s.sink.PublishMessagesWith(ctx, tx, topic, byTopic[topic]...); err != nil {
				return fmt.Errorf("hand off to topic %q: %w", topic, err)
			}
		}
		fired = true
		return nil
	})
	if fired && err == nil {
		s.signalSink()
		s.m.fired.Add(ctx, 1, metric.WithAttributes(s.m.table, attribute.String("cron.job", j.name)))
	}
	if err != nil && ctx.Err() == nil {
		s.cfg.logger.Error("scheduler: cron tick failed", "job", j.name, "tick", tick, "error", err)
	}
}

// cronLeaseName names the lease after the set of jobs: Schedulers sharing a
// table with the same jobs (the replicas of one service) compete for one
// lease, while Schedulers with other jobs (another service on the same
// table, or a new version during a rolling deploy) hold their own, so a
// leader never starves jobs it does not have. A job both lease holders have
// still fires once per tick: the fired-ticks table decides.
func cronLeaseName(jobs map[string]bool) string {
	names := make([]string, 0, len(jobs))
	for name := range jobs {
		names = append(names, name)
	}
	sort.Strings(names)
	h := fnv.New64a()
	for _, name := range names {
		_, _ = h.Write([]byte(name))
		_, _ = h.Write([]byte{0})
	}
	return "cron:" + strconv.FormatUint(h.Sum64(), 16)
}

// ErrNotLeader is returned by the cron elector on replicas that do not hold
// the lease; gocron then skips the tick on that replica.
var ErrNotLeader = errors.New("scheduler: another replica holds the cron lease")

// leaseElector is a gocron.Elector on a lease row with an expiry: the
// holder renews it (on every tick and in the background), and any replica
// takes it over once it has expired on the database clock. Being a row, not
// a session lock, it survives the loss of the holder's connection.
type leaseElector struct {
	st     store.Store
	t      store.SchedulerTable
	name   string
	holder string
	ttl    time.Duration
}

var _ gocron.Elector = (*leaseElector)(nil)

// IsLeader acquires or renews the lease; it returns nil when this replica holds it.
func (e *leaseElector) IsLeader(ctx context.Context) error {
	ok, err := e.st.Executor().SchedulerTakeLease(ctx, e.t, e.name, e.holder, e.ttl)
	if err == nil && !ok {
		return ErrNotLeader
	}
	return err
}

func (e *leaseElector) release(ctx context.Context) {
	_ = e.st.Executor().SchedulerReleaseLease(ctx, e.t, e.name, e.holder)
}

// keepLease renews (or tries to take) the lease every third of its TTL, so
// the leader keeps it between sparse ticks and a follower takes over soon
// after the leader dies.
func (s *Scheduler[TTx]) keepLease(ctx context.Context) {
	t := time.NewTicker(s.cfg.leaseTTL / 3)
	defer t.Stop()
	for {
		_ = s.elector.IsLeader(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// CronLeader returns the instance id of the replica holding the cron lease,
// or "" when the lease is free or expired.
func (s *Scheduler[TTx]) CronLeader(ctx context.Context) (string, error) {
	s.mu.Lock()
	name := s.elector.name
	s.mu.Unlock()
	return s.drv.Executor().SchedulerLeaseHolder(ctx, s.t.st, name)
}
