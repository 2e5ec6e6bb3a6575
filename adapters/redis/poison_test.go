package redis_test

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/vmihailenco/msgpack"

	"github.com/hexeract/hexeract/adapters/internal/suite"
	"github.com/hexeract/hexeract/adapters/redis"
	"github.com/hexeract/hexeract/internal/testenv"
)

// TestPoisonEntries writes stream entries straight to Redis with go-redis,
// interleaved with good ones: metadata with values that are not strings
// (handled, values in text form), an entry without the UUID field
// (handled), and entries whose metadata is not a msgpack map (dead-lettered
// at once with a fault naming the cause). Every good entry is handled, the
// subscription stays open, and the group ends with nothing pending.
func TestPoisonEntries(t *testing.T) {
	c := client(t)
	ctx := context.Background()
	topic := "hexeract.poison." + testenv.Suffix()
	t.Cleanup(func() { c.Del(context.Background(), topic, topic+".dlq") })
	pub, sub, err := redis.New(redis.Config{Client: c, Group: "poison"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	defer sub.Close()

	pack := func(v any) string {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	at := time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)
	entries := []map[string]any{
		{"_watermill_message_uuid": "g1", "metadata": pack(map[string]string{"ce_type": suite.GoodType}), "payload": "good-1"},
		{"_watermill_message_uuid": "g-int", "metadata": pack(map[string]any{"ce_type": 42, "n": map[string]any{"a": []any{true, 1.5}}, "at": at, "bin": []byte{0xff, 0xfe}}), "payload": "good-int"},
		{"_watermill_message_uuid": "b-corrupt", "metadata": "\xc1\xc1 not msgpack", "payload": "bad-corrupt"},
		{"_watermill_message_uuid": "g2", "payload": "good-2"},
		{"metadata": pack(map[string]string{"ce_id": "evt-no-uuid"}), "payload": "good-no-uuid"},
		{"_watermill_message_uuid": "b-notmap", "metadata": pack(42), "payload": "bad-notmap"},
		{"metadata": "\x92\x01", "note": "bad-no-payload"},
		{"_watermill_message_uuid": "g3", "metadata": pack(map[string]string{}), "payload": "good-3"},
	}
	suite.Poison(t, pub, sub, sub, topic, func(t *testing.T) {
		for _, e := range entries {
			if err := c.XAdd(ctx, &goredis.XAddArgs{Stream: topic, Values: e}).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}, suite.PoisonWant{
		Good: map[string]map[string]string{
			"good-1":       {"ce_type": suite.GoodType},
			"good-int":     {"ce_type": "42", "n": `{"a":[true,1.5]}`, "at": "2026-12-03T07:00:00Z", "bin": "//4="},
			"good-2":       nil,
			"good-no-uuid": {"ce_id": "evt-no-uuid"},
			"good-3":       nil,
		},
		Bad: map[string]string{
			"bad-corrupt":    "not a msgpack map",
			"bad-notmap":     "not a msgpack map",
			"bad-no-payload": "not a msgpack map",
		},
	})
	pending, err := c.XPending(ctx, topic, "poison").Result()
	if err != nil {
		t.Fatal(err)
	}
	if pending.Count != 0 {
		t.Fatalf("%d entries still pending in the group, want 0", pending.Count)
	}
}
