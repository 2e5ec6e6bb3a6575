package kafka

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"

	"github.com/hexeract/hexeract/adapters/internal/urlopt"
)

// ParseURL builds a Config from a URL of the form
//
//	kafka://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]/?group=billing&acks=all
//
// The host list gives the seed brokers. User info enables SASL/PLAIN.
// Parameters, all optional:
//
//	group        consumer group (Config.Group), default "hexeract"
//	offset       oldest (default) or newest: where a new group starts
//	acks         all (default), leader or none
//	partitions   partitions of topics created by SubscribeInitialize
//	replication  replication factor of those topics
//	tls          true to connect with TLS (system roots)
//
// Any other parameter is an error. Errors never contain the password.
func ParseURL(rawURL string) (Config, error) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok || !strings.EqualFold(scheme, "kafka") { // schemes are case-insensitive, as adapters.Open treats them
		return Config{}, errors.New("kafka: expected a URL of the form kafka://host:9092[,host2:9092]/?group=NAME")
	}
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	var userinfo string
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		userinfo, authority = authority[:at], authority[at+1:]
	}
	// Parse what follows the brokers with a placeholder host so that net/url
	// checks the rest of the syntax.
	u, err := urlopt.Parse("kafka", "kafka://h"+tail)
	if err != nil {
		return Config{}, err
	}
	if u.Path != "" && u.Path != "/" {
		return Config{}, errors.New("kafka: URL must have no path: topics come from the message types; expected kafka://host:9092/?group=NAME")
	}
	var cfg Config
	for _, b := range strings.Split(authority, ",") {
		if b == "" {
			return Config{}, errors.New("kafka: URL has an empty broker address; expected kafka://host:9092[,host2:9092]/")
		}
		if !strings.Contains(b, ":") {
			b += ":9092"
		}
		cfg.Brokers = append(cfg.Brokers, b)
	}
	if userinfo != "" {
		ui, err := url.Parse("kafka://" + userinfo + "@h")
		if err != nil || ui.User == nil {
			return Config{}, errors.New("kafka: malformed user info in URL; expected kafka://USER:PASSWORD@host:9092/")
		}
		cfg.User = ui.User.Username()
		cfg.Password, _ = ui.User.Password()
	}
	q := urlopt.NewQuery("kafka", u.Query())
	cfg.Group = q.String("group", "")
	var errs []error
	switch off := q.String("offset", "oldest"); off {
	case "oldest":
	case "newest":
		cfg.NewestOffset = true
	default:
		errs = append(errs, fmt.Errorf("kafka: offset=%q: use oldest or newest", off))
	}
	switch acks := q.String("acks", "all"); acks {
	case "all":
		cfg.Acks = sarama.WaitForAll
	case "leader":
		cfg.Acks = sarama.WaitForLocal
	case "none":
		cfg.Acks = NoAcks // sarama.NoResponse is 0, which Config reads as the default (all)
	default:
		errs = append(errs, fmt.Errorf("kafka: acks=%q: use all, leader or none", acks))
	}
	partitions, replication := q.Int("partitions", 0), q.Int("replication", 0)
	if partitions < 0 || partitions > math.MaxInt32 {
		errs = append(errs, fmt.Errorf("kafka: partitions=%d: use 1 to %d", partitions, math.MaxInt32))
	}
	if replication < 0 || replication > math.MaxInt16 {
		errs = append(errs, fmt.Errorf("kafka: replication=%d: use 1 to %d", replication, math.MaxInt16))
	}
	cfg.Partitions = int32(partitions)
	cfg.ReplicationFactor = int16(replication)
	if q.Bool("tls", false) {
		cfg.TLS = defaultTLS()
	}
	errs = append(errs, q.Err(true))
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Open parses rawURL (see [ParseURL]) and returns a publisher and a
// subscriber. logger may be nil.
func Open(_ context.Context, rawURL string, logger watermill.LoggerAdapter) (*Publisher, *Subscriber, error) {
	cfg, err := ParseURL(rawURL)
	if err != nil {
		return nil, nil, err
	}
	return New(cfg, logger)
}
