package dlq

import (
	"context"
	"errors"
	"fmt"
	"slices"

	wnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	nc "github.com/nats-io/nats.go"

	hnats "github.com/hexeract/hexeract/adapters/nats"
)

// natsDriver reads streams message by message with the JetStream
// "get message" API (no consumer is created); a move publishes with the
// adapter's publisher, then deletes the dead letter from its stream.
type natsDriver struct {
	conn *nc.Conn
	js   nc.JetStreamContext
	pub  *hnats.Publisher
}

func openNATS(_ context.Context, rawURL string) (driver, error) {
	cfg, err := hnats.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	conn, err := cfg.Connect()
	if err != nil {
		return nil, err
	}
	js, err := conn.JetStream()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("nats: JetStream: %w", err)
	}
	pub, err := hnats.NewPublisher(cfg, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &natsDriver{conn: conn, js: js, pub: pub}, nil
}

func (d *natsDriver) close() error {
	err := d.pub.Close()
	d.conn.Close()
	return err
}

func (d *natsDriver) topics(ctx context.Context) ([]string, error) {
	var out []string
	for info := range d.js.StreamsInfo(nc.Context(ctx)) {
		out = append(out, info.Config.Subjects...)
	}
	return out, nil
}

func (d *natsDriver) stream(topic string) (*nc.StreamInfo, error) {
	return d.js.StreamInfo(hnats.StreamName(topic))
}

func (d *natsDriver) groups(ctx context.Context, topic string) ([]string, error) {
	var out []string
	for name := range d.js.ConsumerNames(hnats.StreamName(topic), nc.Context(ctx)) {
		out = append(out, name)
	}
	slices.Sort(out)
	return out, nil
}

func (d *natsDriver) check(ctx context.Context, topic, group string) error {
	if _, err := d.stream(topic); err != nil {
		if !errors.Is(err, nc.ErrStreamNotFound) {
			return err
		}
		return unknownTopic(ctx, topic, d.topics)
	}
	if group == "" {
		return nil
	}
	if _, err := d.js.ConsumerInfo(hnats.StreamName(topic), hnats.ConsumerName(group)); err != nil {
		if !errors.Is(err, nc.ErrConsumerNotFound) {
			return err
		}
		gs, err := d.groups(ctx, topic)
		if err != nil {
			return err
		}
		return &UnknownError{Kind: "group", Name: group, Topic: topic, Existing: gs}
	}
	return nil
}

// seqs calls fn with each stored message of topic that group has not
// acknowledged (every message when group is empty), oldest first.
func (d *natsDriver) seqs(ctx context.Context, topic, group string, limit int, fn func(*nc.RawStreamMsg) error) error {
	info, err := d.stream(topic)
	if err != nil {
		return err
	}
	first, last := info.State.FirstSeq, info.State.LastSeq
	if group != "" {
		ci, err := d.js.ConsumerInfo(hnats.StreamName(topic), hnats.ConsumerName(group))
		if err != nil {
			return err
		}
		if f := ci.AckFloor.Stream + 1; f > first {
			first = f
		}
	}
	n := 0
	for seq := first; seq <= last && info.State.Msgs > 0; seq++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		raw, err := d.js.GetMsg(hnats.StreamName(topic), seq, nc.Context(ctx))
		if errors.Is(err, nc.ErrMsgNotFound) {
			continue // deleted (moved)
		}
		if err != nil {
			return err
		}
		if err := fn(raw); err != nil {
			return err
		}
		if n++; limit > 0 && n >= limit {
			return nil
		}
	}
	return nil
}

func natsMessage(raw *nc.RawStreamMsg) (*message.Message, error) {
	m, err := (&wnats.NATSMarshaler{}).Unmarshal(&nc.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data})
	if err != nil {
		return nil, fmt.Errorf("dlq: stream message %d: %w", raw.Sequence, err)
	}
	return m, nil
}

func (d *natsDriver) list(ctx context.Context, topic, group string, limit int, fn func(*message.Message) error) error {
	return d.seqs(ctx, topic, group, limit, decoded(natsMessage, fn))
}

func (d *natsDriver) count(ctx context.Context, topic, group string) (int, error) {
	if group == "" {
		info, err := d.stream(topic)
		if err != nil {
			return 0, err
		}
		return int(info.State.Msgs), nil
	}
	n := 0
	err := d.seqs(ctx, topic, group, 0, func(*nc.RawStreamMsg) error { n++; return nil })
	return n, err
}

func (d *natsDriver) subscribed(_ context.Context, topic string) (bool, error) {
	info, err := d.stream(topic)
	if errors.Is(err, nc.ErrStreamNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return info.State.Consumers > 0, nil
}

func (d *natsDriver) move(ctx context.Context, topic, group string, limit int, next func(*message.Message) (string, *message.Message, error), done func(*message.Message, string)) error {
	info, err := d.stream(topic)
	if err != nil {
		return err
	}
	if info.Config.DenyDelete {
		return fmt.Errorf("dlq: stream %s of %q denies deleting messages (deny_delete), so a moved dead letter could not be removed; nothing moved", info.Config.Name, topic)
	}
	var seqs []uint64
	if err := d.seqs(ctx, topic, group, limit, func(raw *nc.RawStreamMsg) error { seqs = append(seqs, raw.Sequence); return nil }); err != nil {
		return err
	}
	stream := hnats.StreamName(topic)
	for _, seq := range seqs {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := context.WithoutCancel(ctx)
		raw, err := d.js.GetMsg(stream, seq, nc.Context(c))
		if errors.Is(err, nc.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		dead, err := natsMessage(raw)
		if err != nil {
			return err
		}
		to, err := republish(d.pub, topic, dead, next)
		if err != nil {
			return err
		}
		if err := d.js.DeleteMsg(stream, seq, nc.Context(c)); err != nil && !errors.Is(err, nc.ErrMsgNotFound) {
			return fmt.Errorf("dlq: %s was published to %q but could not be deleted from %q (it may be moved twice): %w", dead.UUID, to, topic, err)
		}
		done(dead, to)
	}
	return nil
}
