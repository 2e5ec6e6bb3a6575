// Package nats configures Watermill's NATS JetStream transport
// (github.com/ThreeDotsLabs/watermill-nats/v2) with Hexeract's production
// defaults:
//
//   - one JetStream stream per topic (file storage), created on first use;
//     Publish waits for JetStream's acknowledgement, so a published message
//     is stored;
//   - one durable push consumer per topic and consumer group, bound by a
//     queue group: members of a group compete for messages, each group gets
//     every message, and the consumer (with its position) outlives
//     subscribers and restarts;
//   - explicit, manual acks: a message is acknowledged only after the
//     handler acked it; a nack, a handler that overruns the ack wait, or a
//     subscriber that stops mid-message all lead to redelivery;
//   - reconnection forever, with subscriptions restored;
//   - on shutdown, messages received but not handled are naked at once
//     (the subscriber is Hexeract's own, on nats.go; see [Subscriber]), so
//     they are redelivered at once, not after AckWait.
//
// Topics are NATS subjects (for example "users.registered"). Stream and
// consumer names cannot contain dots, so they are derived from the topic and
// group by [StreamName] and [ConsumerName].
package nats

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	wnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	nc "github.com/nats-io/nats.go"
)

// DefaultGroup is the consumer group used when Config.Group is empty.
const DefaultGroup = "hexeract"

// Defaults of the zero Config fields.
const (
	DefaultAckWait       = 30 * time.Second
	DefaultMaxAckPending = 256
)

// Config configures the NATS JetStream transport. Only URL is required.
type Config struct {
	// URL is the NATS server URL (comma-separated for a cluster), for
	// example nats://127.0.0.1:4222; user info gives user/password auth.
	URL string

	// Group is the consumer group; empty means DefaultGroup. Use one group
	// per service.
	Group string

	// AckWait is how long JetStream waits for a message's ack before
	// redelivering it, and how long the subscriber waits for the handler;
	// 0 means DefaultAckWait. Make it longer than the slowest handler.
	AckWait time.Duration

	// MaxAckPending caps the messages delivered to a group and not yet
	// acknowledged; 0 means DefaultMaxAckPending.
	MaxAckPending int

	// MaxDeliver caps deliveries of one message; 0 means unlimited (use
	// Hexeract's dead-letter middleware to stop retrying).
	MaxDeliver int

	// SubscribersCount is the number of queue members per Subscribe call;
	// 0 means 1.
	SubscribersCount int

	// Replicas is the replica count of created streams; 0 means 1.
	Replicas int

	// MaxAge limits how long created streams keep messages; 0 means forever
	// (until the stream's other limits apply).
	MaxAge time.Duration

	// Options are extra connection options (credentials, TLS, name).
	Options []nc.Option
}

// Validate reports configuration errors, with what to change.
func (c Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("nats: Config.URL is empty; set it to nats://host:4222"))
	}
	if c.AckWait < 0 || c.MaxAckPending < 0 || c.MaxDeliver < 0 || c.SubscribersCount < 0 || c.Replicas < 0 || c.MaxAge < 0 {
		errs = append(errs, errors.New("nats: Config.AckWait, MaxAckPending, MaxDeliver, SubscribersCount, Replicas and MaxAge must not be negative"))
	}
	if c.Group != "" {
		if err := checkName(c.Group); err != nil {
			errs = append(errs, fmt.Errorf("nats: Config.Group %q: %w", c.Group, err))
		}
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = DefaultMaxAckPending
	}
	if c.SubscribersCount == 0 {
		c.SubscribersCount = 1
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	return c
}

func checkName(s string) error {
	if s == "" {
		return errors.New("empty name")
	}
	if strings.ContainsAny(s, " \t\r\n.*>/\\") {
		return errors.New("must not contain whitespace, '.', '*', '>', '/' or '\\'")
	}
	return nil
}

// checkTopic reports topics that are not usable as a JetStream subject.
func checkTopic(topic string) error {
	if topic == "" {
		return errors.New("nats: empty topic")
	}
	if strings.ContainsAny(topic, " \t\r\n*>") || strings.ContainsFunc(topic, unicode.IsControl) || strings.HasPrefix(topic, ".") || strings.HasSuffix(topic, ".") || strings.Contains(topic, "..") {
		return fmt.Errorf("nats: topic %q is not a valid NATS subject (no whitespace, wildcards, or empty tokens)", topic)
	}
	return nil
}

// StreamName returns the JetStream stream that stores topic: the topic with
// every character other than letters, digits, '-' and '_' replaced by '_',
// plus a short hash of the topic when anything was replaced (so "a.b" and
// "a_b" get different streams).
func StreamName(topic string) string { return safeName(topic) }

// ConsumerName returns the durable consumer (and queue group) of group.
func ConsumerName(group string) string { return safeName(group) }

func safeName(s string) string {
	var b strings.Builder
	changed := false
	for _, r := range s {
		if r == '-' || r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
			changed = true
		}
	}
	if !changed {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return b.String() + "_" + hex.EncodeToString(sum[:4])
}

// natsOptions returns the connection options Hexeract uses.
func (c Config) natsOptions() []nc.Option {
	opts := []nc.Option{
		nc.Name("hexeract"),
		nc.MaxReconnects(-1),
		nc.ReconnectWait(500 * time.Millisecond),
		nc.Timeout(10 * time.Second),
	}
	return append(opts, c.Options...)
}

func (c Config) jetStreamConfig() wnats.JetStreamConfig {
	consumer := ConsumerName(c.Group)
	return wnats.JetStreamConfig{
		AutoProvision: false, // streams and consumers are provisioned by this package, once per topic
		SubscribeOptions: []nc.SubOpt{
			nc.ManualAck(), // without it nats.go acks every message the callback returns from, even unhandled ones
			nc.AckExplicit(),
			nc.DeliverAll(),
		},
		AckAsync:          true,
		DurablePrefix:     consumer,
		DurableCalculator: func(prefix, _ string) string { return prefix },
	}
}
