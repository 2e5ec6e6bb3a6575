package outbox_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/store/postgres"
)

type UserRegistered struct {
	UserID string `json:"user_id"`
	Email  string `json:"email"`
}

func (UserRegistered) MessageType() string { return "users.registered" }

type AccountEvent struct {
	Account string `json:"account"`
	N       int    `json:"n"`
}

func (AccountEvent) MessageType() string   { return "accounts.event" }
func (e AccountEvent) OrderingKey() string { return e.Account }

// newOutbox creates an outbox on a fresh table, migrated, dropped at the end.
func newOutbox(t testing.TB, opts ...outbox.Option) (*pgxpool.Pool, *outbox.Outbox[pgx.Tx], string) {
	t.Helper()
	pool := testenv.Postgres(t)
	table := "ob_test_" + testenv.Suffix()
	ob, err := outbox.New(postgres.New(pool), append([]outbox.Option{outbox.WithTable(table)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ob.Close(); dropOutbox(pool, table) })
	return pool, ob, table
}

func dropOutbox(pool *pgxpool.Pool, table string) {
	ctx := context.Background()
	_, _ = pool.Exec(ctx, fmt.Sprintf(`DROP TABLE IF EXISTS %s, %s_dead, %s_delivered`, table, table, table))
	_, _ = pool.Exec(ctx, `DELETE FROM hexeract_schema_migrations WHERE component = $1`, "outbox:"+table)
}

// recorder is a Watermill publisher that records what it receives and can
// be told to fail or block.
type recorder struct {
	mu       sync.Mutex
	got      []*message.Message
	byTopic  map[string][]string
	count    map[string]int
	inflight map[string]bool
	overlap  []string // ids seen in two Publish calls at once
	fail     func(topic string, msgs []*message.Message) error
	hold     time.Duration
	notify   chan struct{}
}

func newRecorder() *recorder {
	return &recorder{byTopic: map[string][]string{}, count: map[string]int{}, inflight: map[string]bool{}, notify: make(chan struct{}, 1)}
}

func (r *recorder) Publish(topic string, msgs ...*message.Message) error {
	r.mu.Lock()
	for _, m := range msgs {
		if r.inflight[m.UUID] {
			r.overlap = append(r.overlap, m.UUID)
		}
		r.inflight[m.UUID] = true
	}
	fail := r.fail
	r.mu.Unlock()
	if r.hold > 0 {
		time.Sleep(r.hold)
	}
	var err error
	if fail != nil {
		err = fail(topic, msgs)
	}
	r.mu.Lock()
	for _, m := range msgs {
		delete(r.inflight, m.UUID)
		if err == nil {
			r.got = append(r.got, m)
			r.byTopic[topic] = append(r.byTopic[topic], m.UUID)
			r.count[m.UUID]++
		}
	}
	r.mu.Unlock()
	if err == nil {
		select {
		case r.notify <- struct{}{}:
		default:
		}
	}
	return err
}

func (r *recorder) Close() error { return nil }

func (r *recorder) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.count)
}

func (r *recorder) messages() []*message.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*message.Message(nil), r.got...)
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, timeout, what, cond)
}

// runRelay starts a relay and stops it at the end of the test.
func runRelay(t testing.TB, pool *pgxpool.Pool, pub message.Publisher, opts ...outbox.RelayOption) (stop func()) {
	t.Helper()
	r, err := outbox.NewRelay(postgres.New(pool), pub, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return testenv.Run(t, "relay", 15*time.Second, r.Run)
}

func pending(t testing.TB, ob *outbox.Outbox[pgx.Tx]) outbox.Stats {
	t.Helper()
	st, err := ob.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}
