package sql

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hexeract/hexeract/adapters/internal/urlopt"
)

// URLOptions are the Hexeract parameters of a PostgreSQL transport URL.
type URLOptions struct {
	Config
	// PoolConfig is the pgx pool configuration from the rest of the URL.
	PoolConfig *pgxpool.Config
}

// ParseURL reads a PostgreSQL URL of the form
//
//	postgres://USER:PASSWORD@HOST:5432/DB?sslmode=disable&group=billing&poll_interval=100ms
//
// Hexeract's parameters, all optional, are removed before the rest goes to
// pgx (so sslmode, pool_max_conns and the other pgx parameters work):
//
//	group          consumer group (Config.Group), default "hexeract"
//	schema         schema of the tables (Config.Schema)
//	table_prefix   table name prefix (Config.TablePrefix), default "hexeract_bus_"
//	poll_interval  idle poll interval, default 100ms
//	batch_size     messages per query, default 100
//	ack_deadline   time a handler may hold a message, default 30s
//
// Errors never contain the password.
func ParseURL(rawURL string) (URLOptions, error) {
	u, err := urlopt.Parse("postgres", rawURL)
	if err != nil {
		return URLOptions{}, err
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return URLOptions{}, fmt.Errorf("postgres: URL scheme %q is not postgres or postgresql", u.Scheme)
	}
	q := urlopt.NewQuery("postgres", u.Query())
	cfg := Config{
		Group:        q.String("group", ""),
		Schema:       q.String("schema", ""),
		TablePrefix:  q.String("table_prefix", ""),
		PollInterval: q.Duration("poll_interval", 0),
		BatchSize:    q.Int("batch_size", 0),
		AckDeadline:  q.Duration("ack_deadline", 0),
	}
	if err := q.Err(false); err != nil {
		return URLOptions{}, err
	}
	u.RawQuery = q.Remaining().Encode()
	pc, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		return URLOptions{}, fmt.Errorf("postgres: %s", urlopt.Scrub(err.Error(), rawURL))
	}
	if err := cfg.validateOptions(); err != nil {
		return URLOptions{}, err
	}
	return URLOptions{Config: cfg, PoolConfig: pc}, nil
}

// Open parses rawURL (see [ParseURL]), opens a pgx pool and returns a
// publisher, a subscriber and the pool; close the pool after both.
func Open(ctx context.Context, rawURL string, logger watermill.LoggerAdapter) (*Publisher, *Subscriber, *pgxpool.Pool, error) {
	opts, err := ParseURL(rawURL)
	if err != nil {
		return nil, nil, nil, err
	}
	return opts.Open(ctx, logger)
}

// Open opens the pool and returns a publisher, a subscriber and the pool.
func (o URLOptions) Open(ctx context.Context, logger watermill.LoggerAdapter) (*Publisher, *Subscriber, *pgxpool.Pool, error) {
	pool, err := connect(ctx, o.PoolConfig)
	if err != nil {
		return nil, nil, nil, err
	}
	cfg := o.Config
	cfg.Pool = pool
	pub, sub, err := New(cfg, logger)
	if err != nil {
		pool.Close()
		return nil, nil, nil, err
	}
	return pub, sub, pool, nil
}
