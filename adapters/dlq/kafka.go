package dlq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	hkafka "github.com/hexeract/hexeract/adapters/kafka"
)

// kafkaDriver reads partitions by offset with a franz-go client that joins
// no group and commits nothing. A Kafka topic cannot delete one record, so a
// move records what was moved in the group's committed offsets, committing
// each record's offset after its publish succeeded.
type kafkaDriver struct {
	cfg  hkafka.Config
	opts []kgo.Opt
	cl   *kgo.Client
	adm  *kadm.Client
	pub  message.Publisher
}

func openKafka(_ context.Context, rawURL string) (driver, error) {
	cfg, err := hkafka.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.ClientID("hexeract-dlq")}
	if cfg.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(cfg.TLS))
	}
	if cfg.User != "" {
		opts = append(opts, kgo.SASL(plain.Auth{User: cfg.User, Pass: cfg.Password}.AsMechanism()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	pub, err := hkafka.NewPublisher(cfg, nil)
	if err != nil {
		cl.Close()
		return nil, err
	}
	return &kafkaDriver{cfg: cfg, opts: opts, cl: cl, adm: kadm.NewClient(cl), pub: pub}, nil
}

func (d *kafkaDriver) close() error {
	err := d.pub.Close()
	d.cl.Close()
	return err
}

func (d *kafkaDriver) topics(ctx context.Context) ([]string, error) {
	td, err := d.adm.ListTopics(ctx)
	if err != nil {
		return nil, err
	}
	return td.Names(), nil
}

// groupsOf returns the groups with committed offsets on topic or members
// assigned to it.
func (d *kafkaDriver) groupsOf(ctx context.Context, topic string) ([]string, error) {
	listed, err := d.adm.ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	names := listed.Groups()
	if len(names) == 0 {
		return nil, nil
	}
	var out []string
	offs := d.adm.FetchManyOffsets(ctx, names...)
	for _, g := range names {
		r, ok := offs[g]
		if ok && r.Err == nil {
			if _, has := r.Fetched[topic]; has {
				out = append(out, g)
				continue
			}
		}
	}
	described, err := d.adm.DescribeGroups(ctx, names...)
	if err == nil {
		for _, g := range described.Sorted() {
			if slices.Contains(out, g.Group) {
				continue
			}
			if _, ok := g.AssignedPartitions()[topic]; ok {
				out = append(out, g.Group)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

func (d *kafkaDriver) exists(ctx context.Context, topic string) (bool, error) {
	td, err := d.adm.ListTopics(ctx, topic)
	if err != nil {
		return false, err
	}
	t, ok := td[topic]
	return ok && t.Err == nil, nil
}

func (d *kafkaDriver) check(ctx context.Context, topic, group string) error {
	ok, err := d.exists(ctx, topic)
	if err != nil {
		return err
	}
	if !ok {
		return unknownTopic(ctx, topic, d.topics)
	}
	return checkGroup(ctx, topic, group, d.groupsOf)
}

// bounds returns, per partition, the first offset to read (the group's
// committed offset, or the log start) and the end offset now.
func (d *kafkaDriver) bounds(ctx context.Context, topic, group string) (map[int32][2]int64, error) {
	starts, err := d.adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	ends, err := d.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	var committed kadm.OffsetResponses
	if group != "" {
		committed, err = d.adm.FetchOffsetsForTopics(ctx, group, topic)
		if errors.Is(err, kerr.GroupIDNotFound) {
			committed, err = nil, nil // a new group: nothing committed yet
		}
		if err != nil {
			return nil, err
		}
	}
	out := map[int32][2]int64{}
	var errs []error
	ends.Each(func(e kadm.ListedOffset) {
		if e.Err != nil {
			errs = append(errs, e.Err)
			return
		}
		from := int64(0)
		if s, ok := starts.Lookup(topic, e.Partition); ok && s.Err == nil {
			from = s.Offset
		}
		if group != "" {
			if c, ok := committed.Lookup(topic, e.Partition); ok && c.Err == nil && c.At >= 0 && c.At > from {
				from = c.At
			}
		}
		out[e.Partition] = [2]int64{from, e.Offset}
	})
	return out, errors.Join(errs...)
}

// records calls fn with each record between the bounds, partition by
// partition, with a client of its own that joins no group.
func (d *kafkaDriver) records(ctx context.Context, topic string, b map[int32][2]int64, limit int, fn func(*kgo.Record) error) error {
	parts := map[int32]kgo.Offset{}
	for p, r := range b {
		if r[0] < r[1] {
			parts[p] = kgo.NewOffset().At(r[0])
		}
	}
	if len(parts) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(append(slices.Clone(d.opts), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	n := 0
	for len(parts) > 0 {
		// The offset before a partition's end may be a transaction
		// marker, never returned as a record: a poll that brings nothing
		// for kafkaIdle ends the pass.
		pctx, cancel := context.WithTimeout(ctx, kafkaIdle)
		fetches := cl.PollFetches(pctx)
		idle := pctx.Err() != nil
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		if idle && fetches.NumRecords() == 0 {
			return nil
		}
		var ferr error
		fetches.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				ferr = errors.Join(ferr, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		var recs []*kgo.Record
		fetches.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
		for _, r := range recs {
			if _, open := parts[r.Partition]; !open || r.Offset >= b[r.Partition][1] {
				continue
			}
			if r.Offset == b[r.Partition][1]-1 {
				delete(parts, r.Partition)
			}
			if err := fn(r); err != nil {
				return err
			}
			if n++; limit > 0 && n >= limit {
				return nil
			}
		}
	}
	return nil
}

// kafkaIdle is how long a read waits for the next record of a partition
// that has not reached its end offset yet.
const kafkaIdle = 5 * time.Second

func kafkaMessage(r *kgo.Record) (*message.Message, error) {
	cm := &sarama.ConsumerMessage{Key: r.Key, Value: r.Value, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp}
	for _, h := range r.Headers {
		cm.Headers = append(cm.Headers, &sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value})
	}
	m, err := (hkafka.Marshaler{}).Unmarshal(cm)
	if err != nil {
		return nil, fmt.Errorf("dlq: record %d/%d: %w", r.Partition, r.Offset, err)
	}
	return m, nil
}

func (d *kafkaDriver) list(ctx context.Context, topic, group string, limit int, fn func(*message.Message) error) error {
	b, err := d.bounds(ctx, topic, group)
	if err != nil {
		return err
	}
	return d.records(ctx, topic, b, limit, decoded(kafkaMessage, fn))
}

func (d *kafkaDriver) count(ctx context.Context, topic, group string) (int, error) {
	b, err := d.bounds(ctx, topic, group)
	if err != nil {
		return 0, err
	}
	n := int64(0)
	for _, r := range b {
		n += r[1] - r[0]
	}
	return int(n), nil
}

func (d *kafkaDriver) subscribed(ctx context.Context, topic string) (bool, error) {
	ok, err := d.exists(ctx, topic)
	if err != nil || !ok {
		return false, err
	}
	gs, err := d.groupsOf(ctx, topic)
	return len(gs) > 0, err
}

func (d *kafkaDriver) move(ctx context.Context, topic, group string, limit int, next func(*message.Message) (string, *message.Message, error), done func(*message.Message, string)) error {
	if group == "" {
		gs, _ := d.groupsOf(ctx, topic)
		return fmt.Errorf("dlq: a move on Kafka needs a group: records cannot be deleted from a topic, so the group's committed offsets record what was moved (groups on %q: %s; a new group starts at the oldest record)", topic, orNone(gs))
	}
	described, err := d.adm.DescribeGroups(ctx, group)
	if err != nil {
		return err
	}
	if g, ok := described[group]; ok && len(g.Members) > 0 {
		return fmt.Errorf("dlq: group %q has %d active member(s) on Kafka; stop them first (their offsets would race the move)", group, len(g.Members))
	}
	// One pass: the records between the group's offsets and the ends now.
	b, err := d.bounds(ctx, topic, group)
	if err != nil {
		return err
	}
	return d.records(ctx, topic, b, limit, func(r *kgo.Record) error {
		c := context.WithoutCancel(ctx)
		dead, err := kafkaMessage(r)
		if err != nil {
			return err
		}
		to, err := republish(d.pub, topic, dead, next)
		if err != nil {
			return err
		}
		var os kadm.Offsets
		os.Add(kadm.Offset{Topic: topic, Partition: r.Partition, At: r.Offset + 1, LeaderEpoch: -1})
		resp, err := d.adm.CommitOffsets(c, group, os)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			return fmt.Errorf("dlq: %s was published to %q but the offset of group %q could not be committed (it may be moved twice): %w", dead.UUID, to, group, err)
		}
		done(dead, to)
		return ctx.Err()
	})
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return fmt.Sprint(s)
}
