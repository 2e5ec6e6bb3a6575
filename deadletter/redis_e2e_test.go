package deadletter_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters"
	"github.com/hexeract/hexeract/deadletter"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/store/sqlite"
)

type e2eOrder struct {
	ID  string `json:"id"`
	Bad bool   `json:"bad"`
}

func (e2eOrder) MessageType() string { return "deadletter.e2e.order" }

// probeStore wraps the dead-letter store: its first write fails (the
// database is down), and each successful write records how many messages
// the consumer group still holds unacknowledged on the broker right after
// the row committed, and whether the row is readable then.
type probeStore struct {
	inner  *deadletter.Store
	rc     *goredis.Client
	topic  string
	mu     sync.Mutex
	failed bool
	seen   []string // per successful write: "pending=N rows=M"
	writes int
}

func (p *probeStore) pending(ctx context.Context) int64 {
	var n int64
	for _, g := range p.rc.XInfoGroups(ctx, p.topic).Val() {
		n += g.Pending
	}
	return n
}

// isPending reports whether the stream entry of message uuid is delivered
// to the group and not acknowledged.
func (p *probeStore) isPending(ctx context.Context, uuid string) bool {
	entries := p.rc.XRange(ctx, p.topic, "-", "+").Val()
	for _, e := range entries {
		if id, _ := e.Values["_watermill_message_uuid"].(string); id != uuid {
			continue
		}
		for _, g := range p.rc.XInfoGroups(ctx, p.topic).Val() {
			pend := p.rc.XPendingExt(ctx, &goredis.XPendingExtArgs{Stream: p.topic, Group: g.Name, Start: e.ID, End: e.ID, Count: 1}).Val()
			if len(pend) == 1 {
				return true
			}
		}
	}
	return false
}

func (p *probeStore) Write(ctx context.Context, rec middleware.DeadLetterRecord) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.writes++
	if !p.failed {
		p.failed = true
		return errors.New("database down")
	}
	if err := p.inner.Write(ctx, rec); err != nil {
		return err
	}
	rows, err := p.inner.List(ctx, deadletter.Filter{})
	if err != nil {
		return err
	}
	p.seen = append(p.seen, fmt.Sprintf("pending=%v rows=%d", p.isPending(ctx, rec.Message.UUID), len(rows)))
	return nil
}

// TestStoreMiddlewareRedis runs an App on Redis Streams whose dead letters
// go to the store: a failed message is written to the table while the
// broker still holds it unacknowledged, and acknowledged only after; a
// write that fails nacks the message, which the broker redelivers, and it is
// stored once; nothing goes to the <topic>.dlq stream.
func TestStoreMiddlewareRedis(t *testing.T) {
	ctx := context.Background()
	suffix := testenv.Suffix()
	url := testenv.RedisURL(t)
	opts, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rc := goredis.NewClient(opts)
	topic := "dlstore-" + suffix
	t.Cleanup(func() {
		rc.Del(context.Background(), topic, topic+".dlq")
		_ = rc.Close()
	})

	drv, err := sqlite.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "dl.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = drv.Close() })
	s, err := deadletter.New(drv)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	probe := &probeStore{inner: s, rc: rc, topic: topic}

	tr, err := adapters.Open(ctx, url, adapters.WithGroup("g-"+suffix))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	app, err := hexeract.New(
		hexeract.WithPubSub(tr.Publisher, tr.Subscriber),
		hexeract.WithLogger(slog.New(slog.DiscardHandler)),
		hexeract.WithTopicFunc(func(string) string { return topic }),
		hexeract.WithDefaultMiddleware(func(c *middleware.DefaultConfig) {
			c.Retry.InitialInterval = time.Millisecond
			c.DeadLetter.Store = probe
			c.DeadLetter.Group = "g-" + suffix
			c.DeadLetter.FailureDelay = 10 * time.Millisecond
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	calls := map[string]int{}
	err = hexeract.HandleFunc(app, func(ctx context.Context, o e2eOrder) error {
		mu.Lock()
		calls[o.ID]++
		mu.Unlock()
		if o.Bad {
			return hexeract.Permanent(fmt.Errorf("order rejected: %s", o.ID))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	testenv.StartApp(t, app)
	for _, o := range []e2eOrder{{ID: "bad-1", Bad: true}, {ID: "good-1"}, {ID: "bad-2", Bad: true}} {
		if err := app.Publish(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 30*time.Second, "both bad orders stored and acknowledged", func() bool {
		rows, err := s.List(ctx, deadletter.Filter{})
		return err == nil && len(rows) == 2 && probe.pending(ctx) == 0
	})
	probe.mu.Lock()
	seen, writes := append([]string(nil), probe.seen...), probe.writes
	probe.mu.Unlock()
	if writes != 3 || len(seen) != 2 {
		t.Fatalf("%d writes, %d successful (%v); want 3 (the first failed and was redelivered) and 2", writes, len(seen), seen)
	}
	// Each row committed while its message was still unacknowledged.
	if seen[0] != "pending=true rows=1" || seen[1] != "pending=true rows=2" {
		t.Fatalf("at each write: %v; want the row readable while the broker still held the message", seen)
	}
	rows, err := s.List(ctx, deadletter.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, d := range rows {
		ids[d.Message.UUID] = true
		if d.Topic != topic || d.Handler == "" || d.Group != "g-"+suffix || d.Fault.Error == "" || !d.Fault.Permanent || d.Attempts != 1 {
			t.Fatalf("stored dead letter %+v (fault %+v)", d, d.Fault)
		}
		if d.Message.Metadata.Get("ce_type") != "deadletter.e2e.order" {
			t.Fatalf("stored metadata %v", d.Message.Metadata)
		}
	}
	if len(ids) != 2 {
		t.Fatalf("stored %v", ids)
	}
	for id := range ids {
		found := false
		for _, e := range rc.XRange(ctx, topic, "-", "+").Val() {
			if v, _ := e.Values["_watermill_message_uuid"].(string); v == id {
				found = true
			}
		}
		if !found || probe.isPending(ctx, id) {
			t.Fatalf("%s: on the stream %v, still pending %v; want acknowledged after the write", id, found, probe.isPending(ctx, id))
		}
	}
	if n := rc.Exists(ctx, topic+".dlq").Val(); n != 0 {
		t.Fatalf("the broker dead-letter stream %s.dlq exists: the store path published there", topic)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls["good-1"] != 1 || calls["bad-1"]+calls["bad-2"] != 3 {
		t.Fatalf("handler calls %v: want good-1 once and the bad ones 3 times in all (one redelivery after the failed write)", calls)
	}
}
