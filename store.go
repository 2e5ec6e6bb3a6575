package hexeract

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/deadletter"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/scheduler"
	"github.com/hexeract/hexeract/store"
)

// WithStore gives the App a database, through a storage driver
// (store/postgres, store/mysql or store/sqlite), and with it, with no
// other wiring:
//
//   - the transactional outbox: inside [InTx] (and inside handlers when
//     [WithInbox] is on), [App.Publish] writes the messages into the
//     outbox table in the business transaction instead of publishing them;
//   - the outbox relay, which publishes them on the App's transport, as a
//     worker of the App;
//   - the scheduler ([App.Schedule], [App.Cron]) and its poller as a worker,
//     handing due messages to the outbox atomically;
//   - the inbox, with [WithInbox];
//   - the store sagas register on (saga.Register with a nil store).
//
// The App's source, codec and topic naming are the components' too; table
// names are the prefix of [WithTablePrefix] ("hexeract_" by default)
// followed by outbox, inbox, scheduled and sagas. The components are plugins
// of the App ([App.Plugins] lists "hexeract.outbox", "hexeract.scheduler"
// and, with the inbox, "hexeract.inbox").
//
// Like every constructor, New does not touch the database: call
// [App.Migrate] (or run `hexeract migrate up`) before [App.Run].
func WithStore[TTx any](drv store.Driver[TTx], opts ...StoreOption) Option {
	return func(c *config) {
		if drv == nil {
			c.storeErr = errors.New("hexeract: WithStore with a nil driver")
			return
		}
		sc := storeConfig{prefix: "hexeract_"}
		for _, opt := range opts {
			if opt != nil {
				opt(&sc)
			}
		}
		c.store = func(a *App) (appStore, error) { return newStoreOf(a, drv, sc) }
	}
}

// StoreOption configures what [WithStore] builds.
type StoreOption func(*storeConfig)

type storeConfig struct {
	prefix     string
	inbox      bool
	noRelay    bool
	noSched    bool
	relayOpts  []outbox.RelayOption
	schedOpts  []scheduler.Option
	outboxOpts []outbox.Option
}

// WithTablePrefix sets the prefix of the App's tables. Default: "hexeract_"
// (tables hexeract_outbox, hexeract_inbox, hexeract_scheduled, hexeract_sagas).
func WithTablePrefix(prefix string) StoreOption {
	return func(c *storeConfig) { c.prefix = prefix }
}

// WithInbox makes every handler of the App idempotent and transactional:
// each delivery runs in a transaction of the store that first records
// (handler, message id) in the inbox table; a message already recorded is
// acknowledged without calling the handler. What the handler publishes
// with [App.Publish] goes to the outbox in the same transaction, and
// [TxFrom] gives the handler the transaction for its own SQL, so the
// handler's effects, its outgoing messages and the inbox row commit
// together or not at all. Default: off.
func WithInbox() StoreOption { return func(c *storeConfig) { c.inbox = true } }

// WithRelayOptions passes options to the App's outbox relay (batch size,
// poll interval, backoff ...). Default: the relay's defaults.
func WithRelayOptions(opts ...outbox.RelayOption) StoreOption {
	return func(c *storeConfig) { c.relayOpts = append(c.relayOpts, opts...) }
}

// WithOutboxOptions passes options to the App's outbox (key locking,
// notification ...). The App sets table, source, codec and topic naming.
func WithOutboxOptions(opts ...outbox.Option) StoreOption {
	return func(c *storeConfig) { c.outboxOpts = append(c.outboxOpts, opts...) }
}

// WithSchedulerOptions passes options to the App's scheduler (poll
// interval, workers, cron location ...). The App sets table, source, codec
// and topic naming.
func WithSchedulerOptions(opts ...scheduler.Option) StoreOption {
	return func(c *storeConfig) { c.schedOpts = append(c.schedOpts, opts...) }
}

// WithoutRelay leaves the relay out of the App, for a producer whose
// outbox is relayed by another process. Default: the App runs a relay.
func WithoutRelay() StoreOption { return func(c *storeConfig) { c.noRelay = true } }

// WithoutScheduler leaves the scheduler's poller out of the App (messages
// can still be scheduled; another process hands them over). Default: the
// App runs the poller.
func WithoutScheduler() StoreOption { return func(c *storeConfig) { c.noSched = true } }

// appStore is what the App needs of its store, whatever the transaction type.
type appStore interface {
	Store() store.Store
	Outbox() TxPublisher
	Scheduler() TxScheduler
	DeadLetters() *deadletter.Store
	prefix() string
	Migrate(ctx context.Context) error
	install(a *App) error
	inTx(ctx context.Context, fn func(ctx context.Context, ex store.ExecutorTx) error) error
	claimInbox(ctx context.Context, ex store.Executor, consumer, id string) (bool, error)
	cron(spec string, produce func(tick time.Time) []router.Message, name string) error
}

// TxPublisher writes messages into an outbox inside a transaction of the
// store: *outbox.Outbox satisfies it. Sagas and the dead-letter store
// write through it.
type TxPublisher interface {
	PublishMessagesWith(ctx context.Context, ex store.Executor, topic string, msgs ...*message.Message) error
	Signal()
}

// TxScheduler schedules and cancels messages inside a transaction of the
// store: *scheduler.Scheduler satisfies it.
type TxScheduler interface {
	ScheduleMessagesWith(ctx context.Context, ex store.Executor, at time.Time, topic string, msgs ...*message.Message) ([]string, error)
	CancelWith(ctx context.Context, ex store.Executor, id string) error
}

type storeOf[TTx any] struct {
	drv   store.Driver[TTx]
	ob    *outbox.Outbox[TTx]
	inbox *outbox.Inbox[TTx]
	sched *scheduler.Scheduler[TTx]
	relay *outbox.Relay
	dead  *deadletter.Store
	sc    storeConfig
}

func newStoreOf[TTx any](a *App, drv store.Driver[TTx], sc storeConfig) (*storeOf[TTx], error) {
	s := &storeOf[TTx]{drv: drv, sc: sc}
	var err error
	s.ob, err = outbox.New(drv, append([]outbox.Option{outbox.WithTable(sc.prefix + "outbox"),
		outbox.WithSource(a.source), outbox.WithCodec(a.codec), outbox.WithTopicNaming(a.topics)}, sc.outboxOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("hexeract: WithStore: %w", err)
	}
	s.sched, err = scheduler.New(drv, s.ob, append([]scheduler.Option{scheduler.WithTable(sc.prefix + "scheduled"),
		scheduler.WithSource(a.source), scheduler.WithCodec(a.codec), scheduler.WithTopicNaming(a.topics),
		scheduler.WithLogger(a.logger)}, sc.schedOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("hexeract: WithStore: %w", err)
	}
	if sc.inbox {
		s.inbox, err = outbox.NewInbox(drv, outbox.WithInboxTable(sc.prefix+"inbox"), outbox.WithSignal(s.ob))
		if err != nil {
			return nil, fmt.Errorf("hexeract: WithStore: %w", err)
		}
	}
	if !sc.noRelay {
		s.relay, err = s.ob.NewRelay(a.transportPublisher(), append([]outbox.RelayOption{outbox.WithLogger(a.logger)}, sc.relayOpts...)...)
		if err != nil {
			return nil, fmt.Errorf("hexeract: WithStore: %w", err)
		}
	}
	s.dead, err = deadletter.New(drv, deadletter.WithTable(sc.prefix+"dead_letters"), deadletter.WithOutbox(s.ob),
		deadletter.WithLogger(a.logger))
	if err != nil {
		return nil, fmt.Errorf("hexeract: WithStore: %w", err)
	}
	return s, nil
}

// install installs the store's components on a as plugins.
func (s *storeOf[TTx]) install(a *App) error {
	if err := a.Install(pluginFunc{name: "hexeract.outbox", install: func(app *App) error {
		if s.relay == nil {
			return nil
		}
		return app.AddWorker(s.relay)
	}}); err != nil {
		return err
	}
	if err := a.Install(pluginFunc{name: "hexeract.scheduler", install: func(app *App) error {
		if s.sc.noSched {
			return nil
		}
		return app.AddWorker(s.sched)
	}}); err != nil {
		return err
	}
	if s.inbox != nil {
		if err := a.Install(pluginFunc{name: "hexeract.inbox", install: func(app *App) error {
			app.router.AddMiddleware(app.inboxMiddleware)
			return nil
		}}); err != nil {
			return err
		}
	}
	return nil
}

func (s *storeOf[TTx]) prefix() string { return s.sc.prefix }

// DeadLetters is the store's dead-letter table.
func (s *storeOf[TTx]) DeadLetters() *deadletter.Store { return s.dead }

func (s *storeOf[TTx]) Store() store.Store     { return s.drv }
func (s *storeOf[TTx]) Outbox() TxPublisher    { return s.ob }
func (s *storeOf[TTx]) Scheduler() TxScheduler { return s.sched }
func (s *storeOf[TTx]) cron(spec string, produce func(time.Time) []router.Message, name string) error {
	if name == "" {
		return s.sched.Cron(spec, produce)
	}
	return s.sched.Cron(spec, produce, scheduler.WithCronName(name))
}

func (s *storeOf[TTx]) Migrate(ctx context.Context) error {
	if err := s.ob.Migrate(ctx); err != nil {
		return err
	}
	if s.inbox != nil {
		if err := s.inbox.Migrate(ctx); err != nil {
			return err
		}
	}
	if err := s.dead.Migrate(ctx); err != nil {
		return err
	}
	return s.sched.Migrate(ctx)
}

func (s *storeOf[TTx]) inTx(ctx context.Context, fn func(ctx context.Context, ex store.ExecutorTx) error) error {
	return store.RunInTx(ctx, s.drv, fn)
}

func (s *storeOf[TTx]) claimInbox(ctx context.Context, ex store.Executor, consumer, id string) (bool, error) {
	return s.inbox.ClaimWith(ctx, ex, consumer, id)
}

// pluginFunc is a Plugin made of a name and a function.
type pluginFunc struct {
	name    string
	install func(*App) error
}

func (p pluginFunc) Name() string           { return p.name }
func (p pluginFunc) Install(app *App) error { return p.install(app) }

// txKey keys the App's transaction in a context; the App distinguishes
// its own from another App's.
type txKey struct{ app *App }

// withTx returns ctx carrying ex as the App's current transaction.
func (a *App) withTx(ctx context.Context, ex store.ExecutorTx) context.Context {
	return context.WithValue(ctx, txKey{a}, ex)
}

// txOf returns the App's current transaction in ctx.
func (a *App) txOf(ctx context.Context) (store.ExecutorTx, bool) {
	if ctx == nil || a.store == nil {
		return nil, false
	}
	ex, ok := ctx.Value(txKey{a}).(store.ExecutorTx)
	return ex, ok
}

// InTx runs fn in a transaction of the App's store ([WithStore]) and
// commits it when fn returns nil. Inside fn, [App.Publish] and
// [App.Schedule] write into the outbox and scheduler tables in tx, so the
// business rows fn writes and the messages commit together, or neither
// does; the relay is woken after the commit. TTx is the driver's
// transaction type (pgx.Tx for PostgreSQL, *sql.Tx for MySQL and SQLite).
//
//	err := hexeract.InTx(ctx, app, func(ctx context.Context, tx *sql.Tx) error {
//		if _, err := tx.ExecContext(ctx, "INSERT INTO orders ...", ...); err != nil {
//			return err
//		}
//		return app.Publish(ctx, OrderPlaced{ID: id})
//	})
func InTx[TTx any](ctx context.Context, app *App, fn func(ctx context.Context, tx TTx) error) error {
	s, err := storeAs[TTx](app)
	if err != nil {
		return err
	}
	if err := s.drv.InTx(ctx, func(ctx context.Context, tx TTx) error {
		return fn(app.withTx(ctx, s.drv.UnwrapTx(tx)), tx)
	}); err != nil {
		return err
	}
	s.ob.Signal()
	return nil
}

// TxFrom returns the transaction of the App's store that ctx runs in:
// inside [InTx], and inside a handler when [WithInbox] is on.
func TxFrom[TTx any](ctx context.Context, app *App) (TTx, bool) {
	var zero TTx
	s, err := storeAs[TTx](app)
	if err != nil {
		return zero, false
	}
	ex, ok := app.txOf(ctx)
	if !ok {
		return zero, false
	}
	return s.drv.TxOf(ex)
}

func storeAs[TTx any](app *App) (*storeOf[TTx], error) {
	if app.store == nil {
		return nil, errors.New("hexeract: the App has no store; build it with hexeract.WithStore")
	}
	s, ok := app.store.(*storeOf[TTx])
	if !ok {
		var zero TTx
		return nil, fmt.Errorf("hexeract: the App's store is a %s driver, whose transactions are not %T", app.store.Store().Dialect(), zero)
	}
	return s, nil
}

// StoreTable returns the name of the App's table for a component
// ("sagas", say): the prefix of [WithTablePrefix] followed by name. Plugins
// that keep a table in the App's store name it with this.
func (a *App) StoreTable(name string) string {
	if a.store == nil {
		return "hexeract_" + name
	}
	return a.store.prefix() + name
}

// Store returns the App's store, or nil without [WithStore].
func (a *App) Store() store.Store {
	if a.store == nil {
		return nil
	}
	return a.store.Store()
}

// TxOutbox returns the App's outbox as a [TxPublisher], or nil without
// [WithStore]; sagas and the dead-letter store write through it.
func (a *App) TxOutbox() TxPublisher {
	if a.store == nil {
		return nil
	}
	return a.store.Outbox()
}

// TxScheduler returns the App's scheduler as a [TxScheduler], or nil
// without [WithStore]; sagas schedule their timeouts through it.
func (a *App) TxScheduler() TxScheduler {
	if a.store == nil {
		return nil
	}
	return a.store.Scheduler()
}

// AddMigrator adds a component whose tables [App.Migrate] migrates (a
// saga store, a plugin's table). It is how a [Plugin] brings a schema.
func (a *App) AddMigrator(m interface {
	Migrate(ctx context.Context) error
}) error {
	if m == nil {
		return errors.New("hexeract: App.AddMigrator with nil")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.migrators = append(a.migrators, m)
	return nil
}

// Migrate creates or updates the tables of the App's store components
// (outbox, inbox, scheduler) and of every migrator added with
// [App.AddMigrator], each under the driver's migration lock, so replicas
// may all call it at start. It is what `hexeract migrate up` does.
func (a *App) Migrate(ctx context.Context) error {
	if a.store != nil {
		if err := a.store.Migrate(ctx); err != nil {
			return err
		}
	}
	a.mu.Lock()
	ms := append([]interface {
		Migrate(ctx context.Context) error
	}(nil), a.migrators...)
	a.mu.Unlock()
	for _, m := range ms {
		if err := m.Migrate(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Schedule has msgs published at at: inside [InTx] (or an inbox handler)
// in that transaction, otherwise in one of its own. It returns the ids of
// the scheduled messages (for a cancel). It needs [WithStore].
func (a *App) Schedule(ctx context.Context, at time.Time, msgs ...router.Message) ([]string, error) {
	if a.store == nil {
		return nil, errors.New("hexeract: App.Schedule needs a store; build the App with hexeract.WithStore")
	}
	var ids []string
	write := func(ctx context.Context, ex store.ExecutorTx) error {
		for _, m := range msgs {
			if m == nil {
				return errors.New("hexeract: Schedule of a nil message")
			}
			wm, err := a.NewMessage(ctx, m)
			if err != nil {
				return fmt.Errorf("hexeract: encode %s: %w", m.MessageType(), err)
			}
			got, err := a.store.Scheduler().ScheduleMessagesWith(ctx, ex, at, a.topics.Topic(m.MessageType()), wm)
			if err != nil {
				return err
			}
			ids = append(ids, got...)
		}
		return nil
	}
	if ex, ok := a.txOf(ctx); ok {
		return ids, write(ctx, ex)
	}
	return ids, a.store.inTx(ctx, write)
}

// Cron runs produce on every tick of the cron spec and publishes what it
// returns; a tick fires once across all replicas sharing the store. name
// identifies the job across replicas (default: the spec). It needs
// [WithStore] and must be called before [App.Run].
func (a *App) Cron(spec, name string, produce func(tick time.Time) []router.Message) error {
	if a.store == nil {
		return errors.New("hexeract: App.Cron needs a store; build the App with hexeract.WithStore")
	}
	return a.store.cron(spec, produce, name)
}

// publishTx writes already-encoded messages for one topic into the outbox
// in ex.
func (a *App) publishTx(ctx context.Context, ex store.Executor, topic string, wms []*message.Message) error {
	return a.store.Outbox().PublishMessagesWith(ctx, ex, topic, wms...)
}

// inboxMiddleware runs each delivery in a store transaction that records
// (handler, message id) in the inbox first; a duplicate is acknowledged
// without running the handler.
func (a *App) inboxMiddleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		ctx := msg.Context()
		consumer := message.HandlerNameFromCtx(ctx)
		var out []*message.Message
		err := a.store.inTx(ctx, func(ctx context.Context, ex store.ExecutorTx) error {
			fresh, err := a.store.claimInbox(ctx, ex, consumer, msg.UUID)
			if err != nil || !fresh {
				return err
			}
			orig := msg.Context()
			// outbox.WithTx too: sagas and outbox.TxHandler nest in it.
			msg.SetContext(outbox.WithTx(a.withTx(orig, ex), ex))
			defer msg.SetContext(orig)
			out, err = h(msg)
			return err
		})
		if err != nil {
			return nil, err
		}
		a.store.Outbox().Signal()
		return out, nil
	}
}

// transportPublisher is the App's transport publisher without the App's
// decorations (the relay adds its own trace links).
func (a *App) transportPublisher() message.Publisher {
	if a.rawPublisher != nil {
		return a.rawPublisher
	}
	return a.publisher
}
