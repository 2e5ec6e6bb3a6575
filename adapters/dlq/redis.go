package dlq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	goredis "github.com/redis/go-redis/v9"

	"github.com/hexeract/hexeract/adapters/redis"
)

// redisDriver reads streams with XRANGE and XINFO; a move publishes with the
// adapter's publisher, then XACKs the entry in every group and XDELs it.
type redisDriver struct {
	client *goredis.Client
	pub    message.Publisher
	sub    message.Subscriber
}

func openRedis(ctx context.Context, rawURL string) (driver, error) {
	o, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	pub, sub, client, err := o.Open(ctx, nil)
	if err != nil {
		return nil, err
	}
	return &redisDriver{client: client, pub: pub, sub: sub}, nil
}

func (d *redisDriver) close() error {
	return errors.Join(d.sub.Close(), d.pub.Close(), d.client.Close())
}

func (d *redisDriver) topics(ctx context.Context) ([]string, error) {
	var out []string
	iter := d.client.ScanType(ctx, 0, "*", 1000, "stream").Iterator()
	for iter.Next(ctx) {
		out = append(out, iter.Val())
	}
	return out, iter.Err()
}

func (d *redisDriver) groups(ctx context.Context, topic string) ([]goredis.XInfoGroup, error) {
	gs, err := d.client.XInfoGroups(ctx, topic).Result()
	if err != nil && !isRedisNoKey(err) {
		return nil, err
	}
	return gs, nil
}

func isRedisNoKey(err error) bool {
	return err != nil && (errors.Is(err, goredis.Nil) || strings.Contains(err.Error(), "no such key"))
}

func (d *redisDriver) check(ctx context.Context, topic, group string) error {
	typ, err := d.client.Type(ctx, topic).Result()
	if err != nil {
		return err
	}
	if typ != "stream" {
		return unknownTopic(ctx, topic, d.topics)
	}
	if group == "" {
		return nil
	}
	gs, err := d.groups(ctx, topic)
	if err != nil {
		return err
	}
	var names []string
	for _, g := range gs {
		if g.Name == group {
			return nil
		}
		names = append(names, g.Name)
	}
	slices.Sort(names)
	return &UnknownError{Kind: "group", Name: group, Topic: topic, Existing: names}
}

// pending returns, for group, the ids it has not acknowledged (its pending
// entries) and its last delivered id.
func (d *redisDriver) position(ctx context.Context, topic, group string) (lastDelivered string, pending map[string]bool, err error) {
	gs, err := d.groups(ctx, topic)
	if err != nil {
		return "", nil, err
	}
	for _, g := range gs {
		if g.Name != group {
			continue
		}
		pending = map[string]bool{}
		start := "-"
		for {
			ps, err := d.client.XPendingExt(ctx, &goredis.XPendingExtArgs{Stream: topic, Group: group, Start: start, End: "+", Count: 1000}).Result()
			if err != nil {
				return "", nil, err
			}
			for _, p := range ps {
				pending[p.ID] = true
			}
			if len(ps) < 1000 {
				break
			}
			start = "(" + ps[len(ps)-1].ID
		}
		return g.LastDeliveredID, pending, nil
	}
	return "", nil, fmt.Errorf("dlq: group %q vanished from %q", group, topic)
}

// entries calls fn for each entry of topic that group has not
// acknowledged (every entry when group is empty), oldest first.
func (d *redisDriver) entries(ctx context.Context, topic, group string, limit int, fn func(goredis.XMessage) error) error {
	var last string
	var pending map[string]bool
	if group != "" {
		var err error
		if last, pending, err = d.position(ctx, topic, group); err != nil {
			return err
		}
	}
	start, n := "-", 0
	for {
		page, err := d.client.XRangeN(ctx, topic, start, "+", 500).Result()
		if err != nil {
			return err
		}
		for _, e := range page {
			if group != "" && !pending[e.ID] && !idAfter(e.ID, last) {
				continue
			}
			if err := fn(e); err != nil {
				return err
			}
			if n++; limit > 0 && n >= limit {
				return nil
			}
		}
		if len(page) < 500 {
			return nil
		}
		start = "(" + page[len(page)-1].ID
	}
}

// idAfter reports whether stream id a comes after b ("ms-seq").
func idAfter(a, b string) bool {
	am, as := streamID(a)
	bm, bs := streamID(b)
	return am > bm || (am == bm && as > bs)
}

// streamID splits a stream entry id "ms-seq" (a missing or malformed part is 0).
func streamID(id string) (ms, seq uint64) {
	m, s, _ := strings.Cut(id, "-")
	ms, _ = strconv.ParseUint(m, 10, 64)
	seq, _ = strconv.ParseUint(s, 10, 64)
	return ms, seq
}

func redisMessage(e goredis.XMessage) (*message.Message, error) {
	msg, err := redisstream.DefaultMarshallerUnmarshaller{}.Unmarshal(e.Values)
	if err != nil {
		return nil, fmt.Errorf("dlq: entry %s: %w", e.ID, err)
	}
	return msg, nil
}

func (d *redisDriver) list(ctx context.Context, topic, group string, limit int, fn func(*message.Message) error) error {
	return d.entries(ctx, topic, group, limit, decoded(redisMessage, fn))
}

func (d *redisDriver) count(ctx context.Context, topic, group string) (int, error) {
	if group == "" {
		n, err := d.client.XLen(ctx, topic).Result()
		return int(n), err
	}
	n := 0
	err := d.entries(ctx, topic, group, 0, func(goredis.XMessage) error { n++; return nil })
	return n, err
}

func (d *redisDriver) subscribed(ctx context.Context, topic string) (bool, error) {
	gs, err := d.groups(ctx, topic)
	return len(gs) > 0, err
}

func (d *redisDriver) move(ctx context.Context, topic, group string, limit int, next func(*message.Message) (string, *message.Message, error), done func(*message.Message, string)) error {
	// One pass: the ids present now.
	var ids []string
	if err := d.entries(ctx, topic, group, limit, func(e goredis.XMessage) error { ids = append(ids, e.ID); return nil }); err != nil {
		return err
	}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Finish the message in hand even when interrupted.
		c := context.WithoutCancel(ctx)
		es, err := d.client.XRangeN(c, topic, id, id, 1).Result()
		if err != nil {
			return err
		}
		if len(es) == 0 {
			continue // moved or trimmed meanwhile
		}
		dead, err := redisMessage(es[0])
		if err != nil {
			return err
		}
		to, err := republish(d.pub, topic, dead, next)
		if err != nil {
			return err
		}
		gs, err := d.groups(c, topic)
		if err != nil {
			return err
		}
		_, err = d.client.TxPipelined(c, func(p goredis.Pipeliner) error {
			for _, g := range gs {
				p.XAck(c, topic, g.Name, id)
			}
			p.XDel(c, topic, id)
			return nil
		})
		if err != nil {
			return fmt.Errorf("dlq: %s was published to %q but could not be removed from %q (it may be moved twice): %w", dead.UUID, to, topic, err)
		}
		done(dead, to)
	}
	return nil
}
