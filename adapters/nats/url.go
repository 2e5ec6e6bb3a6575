package nats

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/hexeract/hexeract/adapters/internal/urlopt"
)

// ParseURL builds a Config from a URL of the form
//
//	nats://[USER:PASSWORD@]HOST:4222/?group=billing&ack_wait=30s
//
// Parameters, all optional:
//
//	group            consumer group (Config.Group), default "hexeract"
//	ack_wait         redelivery timeout of unacked messages (Config.AckWait), default 30s
//	max_ack_pending  unacked messages in flight per group, default 256
//	max_deliver      deliveries per message, default unlimited
//	subscribers      queue members per Subscribe call, default 1
//	replicas         replicas of created streams, default 1
//	max_age          retention of created streams, default forever
//
// Any other parameter is an error. Errors never contain the password.
func ParseURL(rawURL string) (Config, error) {
	u, err := urlopt.Parse("nats", rawURL)
	if err != nil {
		return Config{}, err
	}
	if u.Scheme != "nats" && u.Scheme != "tls" {
		return Config{}, fmt.Errorf("nats: URL scheme %q is not nats or tls", u.Scheme)
	}
	if u.Host == "" {
		return Config{}, fmt.Errorf("nats: URL has no host; expected nats://host:4222/?group=NAME")
	}
	if u.Path != "" && u.Path != "/" {
		return Config{}, fmt.Errorf("nats: URL must have no path: subjects come from the message types")
	}
	q := urlopt.NewQuery("nats", u.Query())
	cfg := Config{
		Group:            q.String("group", ""),
		AckWait:          q.Duration("ack_wait", 0),
		MaxAckPending:    q.Int("max_ack_pending", 0),
		MaxDeliver:       q.Int("max_deliver", 0),
		SubscribersCount: q.Int("subscribers", 0),
		Replicas:         q.Int("replicas", 0),
		MaxAge:           q.Duration("max_age", 0),
	}
	if err := q.Err(true); err != nil {
		return Config{}, err
	}
	u.RawQuery = ""
	u.Path = ""
	cfg.URL = u.String()
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Open parses rawURL (see [ParseURL]) and connects a publisher and a
// subscriber. logger may be nil.
func Open(_ context.Context, rawURL string, logger watermill.LoggerAdapter) (*Publisher, *Subscriber, error) {
	cfg, err := ParseURL(rawURL)
	if err != nil {
		return nil, nil, err
	}
	return New(cfg, logger)
}
