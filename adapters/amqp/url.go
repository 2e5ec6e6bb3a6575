package amqp

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/hexeract/hexeract/adapters/internal/urlopt"
)

// passThrough are the query parameters the AMQP client itself reads.
var passThrough = []string{"heartbeat", "connection_timeout", "channel_max", "auth_mechanism", "certfile", "keyfile", "cacertfile", "server_name_indication"} //nolint:gochecknoglobals // a read-only list of names, never written

// ParseURL builds a Config from a URL of the form
//
//	amqp[s]://USER:PASSWORD@HOST:PORT/VHOST?group=billing&prefetch=64&confirm=true
//
// Hexeract's parameters, all optional:
//
//	group          consumer group (Config.Group), default "hexeract"
//	prefetch       QoS prefetch count (Config.Prefetch), default 64
//	confirm        false disables publisher confirms (Config.NoConfirm)
//	channel_pool   publisher channels kept open (Config.ChannelPoolSize), default 8
//	reconnect_max  cap of the reconnection backoff, e.g. 10s
//	connection_name  the name RabbitMQ shows for the connections (Config.ConnectionName)
//
// The client's own parameters (heartbeat, connection_timeout, channel_max,
// auth_mechanism, certfile, keyfile, cacertfile, server_name_indication) are
// passed through. Any other parameter is an error. Errors never contain the
// password.
func ParseURL(rawURL string) (Config, error) {
	u, err := urlopt.Parse("amqp", rawURL)
	if err != nil {
		return Config{}, err
	}
	if u.Scheme != "amqp" && u.Scheme != "amqps" {
		return Config{}, fmt.Errorf("amqp: URL scheme %q is not amqp or amqps", u.Scheme)
	}
	if u.Host == "" {
		return Config{}, fmt.Errorf("amqp: URL has no host; expected amqp://user:password@host:5672/vhost")
	}
	q := urlopt.NewQuery("amqp", u.Query())
	cfg := Config{
		Group:                q.String("group", ""),
		Prefetch:             q.Int("prefetch", 0),
		NoConfirm:            !q.Bool("confirm", true),
		ChannelPoolSize:      q.Int("channel_pool", 0),
		ReconnectMaxInterval: q.Duration("reconnect_max", 0),
		ConnectionName:       q.String("connection_name", ""),
	}
	q.Known(passThrough...)
	if err := q.Err(true); err != nil {
		return Config{}, err
	}
	u.RawQuery = q.Remaining().Encode()
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
