package middleware_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	wmmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/hexeract/hexeract/deadletter"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/store/sqlite"
)

func newDeadLetterStore(t *testing.T) *deadletter.Store {
	t.Helper()
	ctx := context.Background()
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
	return s
}

// TestDeadLetterToStore runs DeadLetter with a store and no publisher:
// a panic, a permanent error and an undecodable delivery are written to the
// table with their faults (secrets left out), nothing is published to the
// dead-letter topic, and good messages go on.
func TestDeadLetterToStore(t *testing.T) {
	if _, err := middleware.DeadLetter(nil, middleware.DeadLetterOptions{}); err == nil {
		t.Fatal("DeadLetter without publisher and store accepted")
	}
	s := newDeadLetterStore(t)
	ps := newPubSub(t)
	topic := topicName("stored")
	dlq := subscribe(t, ps, topic+".dlq")
	retry := must(middleware.Retry(middleware.RetryPolicy{MaxAttempts: 2, InitialInterval: time.Millisecond}))
	dead := must(middleware.DeadLetter(nil, middleware.DeadLetterOptions{Store: s, Group: "billing"}))
	handled := make(chan string, 10)
	runRouter(t, ps, topic, func(msg *message.Message) error {
		switch string(msg.Payload) {
		case "nil map":
			explode()
		case "reject":
			return router.Permanent(errors.New("invalid order"))
		}
		handled <- string(msg.Payload)
		return nil
	}, dead, retry, wmmiddleware.Recoverer)
	secret := message.NewMessage("s1", []byte("reject"))
	secret.Metadata["authorization"] = "Bearer x"
	secret.Metadata["tenant"] = "t1"
	bad := router.NewUndecodable("", []byte("\x82raw"), message.Metadata{"ce_source": "src"}, "not msgpack")
	publish(t, ps, topic, message.NewMessage("p1", []byte("nil map")), secret, bad, message.NewMessage("ok", []byte("fine")))
	if got := recv(t, handled); got != "fine" {
		t.Fatalf("handled %q", got)
	}
	ctx := context.Background()
	var rows []*deadletter.DeadLetter
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var err error
		if rows, err = s.List(ctx, deadletter.Filter{}); err != nil {
			t.Fatal(err)
		}
		if len(rows) == 3 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(rows) != 3 {
		t.Fatalf("%d dead letters stored, want 3", len(rows))
	}
	byPayload := map[string]*deadletter.DeadLetter{}
	for _, d := range rows {
		byPayload[string(d.Message.Payload)] = d
		if d.Topic != topic || d.Handler != "handler-"+topic || d.Group != "billing" {
			t.Errorf("%s: topic %q handler %q group %q", d.Message.UUID, d.Topic, d.Handler, d.Group)
		}
		for k := range d.Message.Metadata {
			if middleware.IsFaultKey(k) || k == router.KeyTransportError {
				t.Errorf("%s: stored metadata holds %s", d.Message.UUID, k)
			}
		}
	}
	p := byPayload["nil map"]
	if p == nil || p.Fault.Type != "panic" || p.Attempts != 2 || !strings.HasPrefix(p.Fault.Stack, "panic(") || !strings.HasPrefix(p.Fault.Error, "panic: assignment to entry in nil map") {
		t.Fatalf("panic stored as %+v", p)
	}
	r := byPayload["reject"]
	if r == nil || !r.Fault.Permanent || r.Attempts != 1 || r.Message.Metadata.Get("authorization") != "" || r.Message.Metadata.Get("tenant") != "t1" {
		t.Fatalf("permanent error stored as %+v %v", r, r.Message.Metadata)
	}
	u := byPayload["\x82raw"]
	if u == nil || u.Fault.Type != "*router.UnmarshalError" || u.Attempts != 0 || u.Message.UUID == "" || u.Message.Metadata.Get("ce_source") != "src" {
		t.Fatalf("undecodable stored as %+v", u)
	}
	select {
	case m := <-dlq:
		t.Fatalf("a dead letter was published to %s.dlq: %s", topic, m.UUID)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestDefaultChainWithStoreOnly checks that Default puts the dead-letter
// step in the chain when only a store is configured.
func TestDefaultChainWithStoreOnly(t *testing.T) {
	without := must(middleware.Default(middleware.DefaultConfig{}))
	with := must(middleware.Default(middleware.DefaultConfig{DeadLetter: middleware.DeadLetterOptions{Store: newDeadLetterStore(t)}}))
	if len(with) != len(without)+1 {
		t.Fatalf("chain with a store has %d steps, without %d", len(with), len(without))
	}
}
