package scheduler_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/scheduler"
)

// namedSink is a sink with a topic naming, as an outbox built with
// outbox.WithTopicNaming(app.Topics()) is.
type namedSink struct {
	*tableSink
	topics router.TopicNaming
}

func (s namedSink) Topics() router.TopicNaming { return s.topics }

// A scheduler takes its sink's topic naming, so the App's naming given to
// the outbox reaches the scheduler without being repeated; its own
// WithTopicFunc or WithTopicNaming still wins.
func TestSchedulerTakesSinkTopicNaming(t *testing.T) {
	pool := testenv.Postgres(t)
	sink := namedSink{newTableSink(t, pool), router.UnderscoreTopics{}}
	cases := []struct {
		name string
		opts []scheduler.Option
		want string
	}{
		{"sink", nil, "test_reminder"},
		{"own func", []scheduler.Option{scheduler.WithTopicFunc(func(s string) string { return "own." + s })}, "own.test.reminder"},
		{"own naming", []scheduler.Option{scheduler.WithTopicNaming(router.DefaultTopics{})}, "test.reminder"},
	}
	for _, c := range cases {
		s := newScheduler(t, pool, sink, "", c.opts...)
		ctx := context.Background()
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := s.Schedule(ctx, tx, time.Now().Add(time.Hour), reminder{N: 1})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		pending, err := s.List(ctx, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(pending) != 1 || pending[0].Topic != c.want {
			t.Errorf("%s: pending %+v, want one on topic %q", c.name, pending, c.want)
		}
	}
}
