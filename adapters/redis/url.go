package redis

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	goredis "github.com/redis/go-redis/v9"

	"github.com/hexeract/hexeract/adapters/internal/urlopt"
)

// URLOptions is a parsed Redis transport URL.
type URLOptions struct {
	Config
	// ClientOptions are the go-redis options from the rest of the URL.
	ClientOptions *goredis.Options
}

// ParseURL reads a Redis URL of the form
//
//	redis[s]://[USER:PASSWORD@]HOST:6379/DB?group=billing&max_len=100000
//
// Hexeract's parameters, all optional, are removed before the rest goes to
// go-redis's ParseURL (so dial_timeout, pool_size and its other parameters
// work):
//
//	group          consumer group (Config.Group), default "hexeract"
//	consumer       consumer name in the group, default random
//	max_len        approximate cap of each stream's length, default unlimited
//	nack_resend    wait before redelivering a nacked message, default 100ms
//	max_idle       time before a pending message is claimed, default 60s
//	claim_interval how often pending messages are checked, default 5s
//
// Errors never contain the password.
func ParseURL(rawURL string) (URLOptions, error) {
	u, err := urlopt.Parse("redis", rawURL)
	if err != nil {
		return URLOptions{}, err
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return URLOptions{}, fmt.Errorf("redis: URL scheme %q is not redis or rediss", u.Scheme)
	}
	q := urlopt.NewQuery("redis", u.Query())
	cfg := Config{
		Group:           q.String("group", ""),
		Consumer:        q.String("consumer", ""),
		MaxLen:          int64(q.Int("max_len", 0)),
		NackResendSleep: q.Duration("nack_resend", 0),
		MaxIdleTime:     q.Duration("max_idle", 0),
		ClaimInterval:   q.Duration("claim_interval", 0),
	}
	if err := q.Err(false); err != nil {
		return URLOptions{}, err
	}
	if err := cfg.validateOptions(); err != nil {
		return URLOptions{}, err
	}
	u.RawQuery = q.Remaining().Encode()
	opts, err := goredis.ParseURL(u.String())
	if err != nil {
		return URLOptions{}, fmt.Errorf("redis: %s", urlopt.Scrub(err.Error(), rawURL))
	}
	return URLOptions{Config: cfg, ClientOptions: opts}, nil
}

// Open parses rawURL (see [ParseURL]), connects a client (checked with
// PING) and returns a publisher, a subscriber and the client; close the
// client after both.
func Open(ctx context.Context, rawURL string, logger watermill.LoggerAdapter) (*Publisher, *Subscriber, *goredis.Client, error) {
	o, err := ParseURL(rawURL)
	if err != nil {
		return nil, nil, nil, err
	}
	return o.Open(ctx, logger)
}

// Open connects a client (checked with PING) and returns a publisher, a
// subscriber and the client; close the client after both.
func (o URLOptions) Open(ctx context.Context, logger watermill.LoggerAdapter) (*Publisher, *Subscriber, *goredis.Client, error) {
	client := goredis.NewClient(o.ClientOptions)
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		return nil, nil, nil, fmt.Errorf("redis: connect to %s: %w", o.ClientOptions.Addr, err)
	}
	cfg := o.Config
	cfg.Client = client
	pub, sub, err := New(cfg, logger)
	if err != nil {
		_ = client.Close()
		return nil, nil, nil, err
	}
	return pub, sub, client, nil
}
