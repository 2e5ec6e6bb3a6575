// Command order-service is an order service as one program, on one
// Hexeract App:
//
//	POST /orders {"sku":"book","qty":2}
//	  -> a price quote by request/reply (reqreply.Request; the pricing
//	     service answers with reqreply.Handle on the same App)
//	  -> the order row and OrderPlaced in one transaction (hexeract.InTx +
//	     App.Publish: the event goes to the outbox)
//	  -> the outbox relay -> the broker -> the inbox (hexeract.WithInbox)
//	  -> the "orders" saga: it asks the stock service to reserve the items
//	     with a deadline; reserved -> the order is confirmed; refused or no
//	     answer in time -> the order is cancelled and the reservation
//	     released (a compensation)
//	GET /orders/{id} -> a mediator query
//
// Every handler runs behind the inbox, in a transaction whose business SQL,
// outgoing messages and inbox row commit together, so each effect is
// applied once even when the broker delivers a message twice.
//
// It runs in memory on a temporary SQLite database by default; -transport
// (or $HEXERACT_TRANSPORT) takes any URL adapters.Open takes (amqp://,
// nats://, kafka:// ...), -database-url (or $HEXERACT_DATABASE_URL) a
// postgres://, mysql:// (MariaDB) or sqlite: URL:
//
//	go run ./examples/order-service
//	go run ./examples/order-service -transport amqp://guest:guest@127.0.0.1:5672/ \
//		-database-url postgres://postgres@127.0.0.1:5432/test?sslmode=disable
//	curl -d '{"sku":"book","qty":2}' localhost:8080/orders
//	curl localhost:8080/orders/<id>
//
// The products are seeded by the schema migration: book (10 in stock),
// lamp (2) and globe, whose warehouse is offline, so its orders are
// cancelled when the reservation times out. See README.md for how much of
// the program is wiring.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters"
	"github.com/hexeract/hexeract/mediator"
	"github.com/hexeract/hexeract/saga"
	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/mysql"
	"github.com/hexeract/hexeract/store/postgres"
	"github.com/hexeract/hexeract/store/sqlite"
	"github.com/hexeract/hexeract/store/storeurl"
)

// config is what the flags set.
type config struct {
	transportURL string        // "" for the App's in-memory broker
	databaseURL  string        // postgres://, mysql://, sqlite:
	tablePrefix  string        // of every table, the App's and the business ones
	timeout      time.Duration // of the stock reservation
	logger       *slog.Logger
}

func main() {
	cfg := config{logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	addr := flag.String("addr", "127.0.0.1:8080", "HTTP listen address")
	flag.StringVar(&cfg.transportURL, "transport", os.Getenv(adapters.EnvTransport), "transport URL (default $"+adapters.EnvTransport+", else in memory)")
	flag.StringVar(&cfg.databaseURL, "database-url", os.Getenv("HEXERACT_DATABASE_URL"), "database URL (default $HEXERACT_DATABASE_URL, else SQLite in a temporary file)")
	flag.StringVar(&cfg.tablePrefix, "table-prefix", "order_service_", "prefix of every table")
	flag.DurationVar(&cfg.timeout, "reservation-timeout", 2*time.Second, "how long the saga waits for the stock reservation")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := serve(ctx, cfg, *addr); err != nil {
		log.Fatal(err)
	}
}

// serve runs the service and its HTTP server until ctx ends.
func serve(ctx context.Context, cfg config, addr string) error {
	if cfg.databaseURL == "" {
		dir, err := os.MkdirTemp("", "order-service")
		if err != nil {
			return err
		}
		defer func() { _ = os.RemoveAll(dir) }()
		cfg.databaseURL = "sqlite://" + filepath.Join(dir, "orders.db")
	}
	svc, err := open(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { _ = svc.close() }()
	if err := svc.app.Migrate(ctx); err != nil {
		return err
	}
	srv := &http.Server{Addr: addr, Handler: svc.http, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.WithoutCancel(ctx))
	}()
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Print(err)
		}
	}()
	fmt.Printf("order-service on http://%s (%s)\n", addr, store.RedactURL(cfg.databaseURL))
	return svc.app.Run(ctx)
}

// service is the App and the HTTP handler over it.
type service struct {
	app   *hexeract.App
	http  http.Handler
	close func() error
	// inTx runs fn in a transaction of the App's store (for tests).
	inTx func(ctx context.Context, fn func(db) error) error
}

// open opens the database cfg names with its driver and builds the
// service on it: the driver's transaction type flows into the handlers.
func open(ctx context.Context, cfg config) (*service, error) {
	switch storeurl.Dialect(cfg.databaseURL) {
	case store.Postgres:
		drv, err := postgres.Open(ctx, cfg.databaseURL)
		if err != nil {
			return nil, err
		}
		return newService(ctx, cfg, drv, func(tx pgx.Tx) db { return pgxDB{tx} })
	case store.MySQL:
		drv, err := mysql.Open(ctx, cfg.databaseURL)
		if err != nil {
			return nil, err
		}
		return newService(ctx, cfg, drv, func(tx *sql.Tx) db { return stdDB{tx} })
	case store.SQLite:
		drv, err := sqlite.Open(ctx, cfg.databaseURL)
		if err != nil {
			return nil, err
		}
		return newService(ctx, cfg, drv, func(tx *sql.Tx) db { return stdDB{tx} })
	}
	return nil, fmt.Errorf("unknown database URL %s", store.RedactURL(cfg.databaseURL))
}

// newService wires the App on drv: transport, store (outbox, relay,
// scheduler, inbox), saga, handlers, mediator and HTTP routes.
func newService[TTx any](ctx context.Context, cfg config, drv store.Driver[TTx], sqlOf func(TTx) db) (*service, error) {
	// The App owns the driver and the transport: App.Close closes them
	// last, and a failing New closes them too.
	opts := []hexeract.Option{hexeract.WithLogger(cfg.logger), hexeract.WithSource("/order-service"),
		hexeract.WithStore(drv, hexeract.WithTablePrefix(cfg.tablePrefix), hexeract.WithInbox()), hexeract.WithOwned(drv)}
	if cfg.transportURL != "" {
		bus, err := adapters.Open(ctx, cfg.transportURL, adapters.WithGroup("order-service"), adapters.WithLogger(cfg.logger))
		if err != nil {
			return nil, errors.Join(err, drv.Close())
		}
		opts = append(opts, hexeract.WithPubSub(bus.Publisher, bus.Subscriber), hexeract.WithOwned(bus))
	}
	app, err := hexeract.New(opts...)
	if err != nil {
		return nil, err
	}
	t := newTables(cfg.tablePrefix)
	queries, err := mediator.New()
	if err == nil {
		err = errors.Join(
			app.AddMigrator(migrator{drv, t}),
			saga.Register(app, orderSaga(cfg.timeout), nil),
			handlers(app, sqlOf, t),
			mediator.RegisterFunc(queries, getOrder(app, sqlOf, t)),
		)
	}
	if err != nil {
		return nil, errors.Join(err, app.Close())
	}
	inTx := func(ctx context.Context, fn func(db) error) error {
		return hexeract.InTx(ctx, app, func(_ context.Context, tx TTx) error { return fn(sqlOf(tx)) })
	}
	return &service{app: app, http: routes(app, queries, sqlOf, t), close: app.Close, inTx: inTx}, nil
}

// migrator migrates the business tables with the App's (App.Migrate).
type migrator struct {
	st store.Store
	t  tables
}

func (m migrator) Migrate(ctx context.Context) error {
	_, err := m.st.Migrate(ctx, m.t.orders, m.t.migrations())
	return err
}
