package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/internal/msgtrace"
	"github.com/hexeract/hexeract/router"
	hxstore "github.com/hexeract/hexeract/store"
)

// UnknownOutcome is what happens to an event that is not a start event and
// whose instance does not exist (never started, or finished).
type UnknownOutcome int

const (
	// UnknownDeadLetter returns a permanent [*UnknownInstanceError]: retry
	// middleware skips it and dead-letter middleware moves the message to the
	// dead-letter topic at once. The default: nothing is dropped silently.
	UnknownDeadLetter UnknownOutcome = iota
	// UnknownIgnore acknowledges the event and logs it at debug level.
	UnknownIgnore
	// UnknownError returns a retryable [*UnknownInstanceError], so the
	// message is redelivered (and dead-lettered once retries run out): for
	// events that may overtake the event that starts their instance.
	UnknownError
)

// String returns "dead-letter", "ignore" or "error".
func (o UnknownOutcome) String() string {
	switch o {
	case UnknownIgnore:
		return "ignore"
	case UnknownError:
		return "error"
	default:
		return "dead-letter"
	}
}

const instrumentation = "github.com/hexeract/hexeract/saga"

// Attributes of the saga transition spans.
const (
	AttrSagaName    = attribute.Key("hexeract.saga.name")
	AttrSagaKey     = attribute.Key("hexeract.saga.key")
	AttrSagaPhase   = attribute.Key("hexeract.saga.phase") // "event", "timeout" or "compensate"
	AttrMessageType = attribute.Key("hexeract.message.type")
)

// Option configures [Register].
type Option func(*options)

type options struct {
	unknown   UnknownOutcome
	retention time.Duration
	retries   int
	outbox    Outbox
	sched     Scheduler
	logger    *slog.Logger
	tp        trace.TracerProvider
}

// WithUnknownInstance sets the outcome for events of an unknown instance;
// the default is [UnknownDeadLetter].
func WithUnknownInstance(o UnknownOutcome) Option { return func(c *options) { c.unknown = o } }

// WithRetention keeps finished (completed or failed) instances for d
// instead of deleting them at once; [Store.Purge] (or [Purger]) deletes them
// afterwards. 0, the default, deletes an instance when it finishes.
func WithRetention(d time.Duration) Option { return func(c *options) { c.retention = d } }

// WithConflictRetries sets how many times a transition that lost an
// optimistic-concurrency race is run again at once (on the reloaded state)
// before the message is handed back as a retryable error. The default is 20.
func WithConflictRetries(n int) Option { return func(c *options) { c.retries = n } }

// WithOutbox makes a saga on the SQL store write its outgoing messages
// (and compensation steps) into o inside the transition's transaction,
// through o.PublishMessagesWith; an outbox.Outbox on the same database as
// the store. A relay delivers them.
func WithOutbox(o Outbox) Option { return func(c *options) { c.outbox = o } }

// WithScheduler makes a saga on the SQL store schedule and cancel its
// timeouts in s inside the transition's transaction, through
// s.ScheduleMessagesWith and s.CancelWith; a scheduler.Scheduler on the
// same database as the store, whose poller runs somewhere (for example as
// an App worker).
func WithScheduler(s Scheduler) Option { return func(c *options) { c.sched = s } }

// WithTracerProvider sets the OpenTelemetry tracer provider of the saga's
// transition spans ("saga <name> <message type>"); the default (nil) is the
// global one, otel.GetTracerProvider().
func WithTracerProvider(tp trace.TracerProvider) Option { return func(c *options) { c.tp = tp } }

// WithLogger sets the logger; the default is the App's.
func WithLogger(l *slog.Logger) Option { return func(c *options) { c.logger = l } }

type runtime[S any] struct {
	def   *Definition[S]
	app   *hexeract.App
	store Store
	tr    transport
	opt   options
	log   *slog.Logger
	now   func() time.Time

	tracer   trace.Tracer
	sagaAttr attribute.KeyValue
}

// Register attaches the saga def to app with store: it adds one typed
// handler per declared event (named "saga.<name>.<wire name>") and, once per
// App, the handlers of the shared timeout and compensation topics.
//
// With a store on a storage driver (one with a Driver() store.Store method,
// such as [*SQLStore]), outgoing messages go through the outbox in the
// transition's transaction, so [WithOutbox] is required, and
// [WithScheduler] when the saga uses timeouts. With any other
// store (the [MemoryStore]) messages are published through the App after the
// commit and timeouts use in-process timers.
//
// With a nil store, the saga uses the App's store (hexeract.WithStore): a
// SQL store on the App's table prefix followed by "sagas", the App's
// outbox and scheduler (unless WithOutbox and WithScheduler say otherwise),
// and [hexeract.App.Migrate] creates its table. Behind the App's inbox
// (hexeract.WithInbox) a transition commits in the inbox's transaction.
func Register[S any](app *hexeract.App, def *Definition[S], store Store, opts ...Option) error {
	_, err := register(app, def, store, opts...)
	return err
}

func register[S any](app *hexeract.App, def *Definition[S], store Store, opts ...Option) (*runtime[S], error) {
	if app == nil || def == nil {
		return nil, errors.New("saga: Register needs an App and a Definition")
	}
	if store == nil {
		// The App's store (hexeract.WithStore): the saga's table, outbox
		// and scheduler are the App's, and App.Migrate migrates the table.
		if app.Store() == nil {
			return nil, errors.New("saga: Register needs a Store, or an App built with hexeract.WithStore")
		}
		sqlStore, err := NewSQLStore(app.Store(), WithTable(app.StoreTable("sagas")))
		if err != nil {
			return nil, err
		}
		if err := app.AddMigrator(sqlStore); err != nil {
			return nil, err
		}
		store = sqlStore
		opts = append([]Option{WithOutbox(app.TxOutbox()), WithScheduler(app.TxScheduler())}, opts...)
	}
	if err := def.Err(); err != nil {
		return nil, err
	}
	if len(def.events) == 0 {
		return nil, fmt.Errorf("saga %s: no events; declare at least one with saga.StartedBy", def.name)
	}
	hasStart := false
	for _, e := range def.events {
		hasStart = hasStart || e.start
	}
	if !hasStart {
		return nil, fmt.Errorf("saga %s: no start event; declare one with saga.StartedBy", def.name)
	}
	o := options{retries: 20}
	for _, opt := range opts {
		opt(&o)
	}
	rt := &runtime[S]{def: def, app: app, store: store, opt: o, log: o.logger, now: time.Now,
		tracer: msgtrace.Tracer(o.tp, instrumentation), sagaAttr: AttrSagaName.String(def.name)}
	if rt.log == nil {
		rt.log = app.Logger()
	}
	rt.log = rt.log.With("saga", def.name)
	if _, ok := store.(driverStore); ok {
		if o.outbox == nil {
			return nil, fmt.Errorf("saga %s: the SQL store writes outgoing messages through the outbox in the same transaction; pass saga.WithOutbox(outbox) to saga.Register", def.name)
		}
		if len(def.timeouts) > 0 && o.sched == nil {
			return nil, fmt.Errorf("saga %s: it declares timeouts, which need the durable scheduler; pass saga.WithScheduler(scheduler) to saga.Register", def.name)
		}
		rt.tr = &txTransport{outbox: o.outbox, sched: o.sched}
	} else {
		rt.tr = &memTransport{app: app, log: rt.log, timers: make(map[string]*time.Timer)}
	}
	// The saga is a plugin of the App: App.Plugins lists it.
	err := app.Install(sagaPlugin{name: "hexeract.saga." + def.name, install: func(app *hexeract.App) error {
		d, err := dispatcherFor(app)
		if err != nil {
			return err
		}
		if err := d.add(def.name, rt); err != nil {
			return err
		}
		for _, e := range def.events {
			if err := e.add(app, rt); err != nil {
				return fmt.Errorf("saga %s: %w", def.name, err)
			}
		}
		return nil
	}})
	if err != nil {
		return nil, err
	}
	return rt, nil
}

// sagaPlugin installs one saga's handlers on an App.
type sagaPlugin struct {
	name    string
	install func(*hexeract.App) error
}

func (p sagaPlugin) Name() string                    { return p.name }
func (p sagaPlugin) Install(app *hexeract.App) error { return p.install(app) }

// check decides, for a loaded (or missing) instance, whether the
// transition runs. proceed false with a nil error means "acknowledge and
// skip".
type check func(in *Instance) (proceed bool, err error)

// runPhase performs one transition for the instance key, running it again
// on optimistic-concurrency conflicts.
//
// The transition runs in a span "saga <name> <wire>", a child of the
// handler's span, so what it sends, schedules and compensates continues the
// trace of the message that caused it.
func (rt *runtime[S]) runPhase(ctx context.Context, key, wire string, start bool, ph phase, chk check, call func(*Context[S], *S) error) (err error) {
	ctx, span := rt.tracer.Start(ctx, "saga "+rt.def.name+" "+wire, trace.WithAttributes(
		rt.sagaAttr, AttrSagaKey.String(key), AttrSagaPhase.String(ph.String()), AttrMessageType.String(wire)))
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	backoff := time.Millisecond
	for attempt := 0; ; attempt++ {
		err := rt.attempt(ctx, key, wire, start, ph, chk, call)
		if err == nil || !isConflict(err) {
			return err
		}
		if attempt >= rt.opt.retries {
			return fmt.Errorf("saga %s key %q: %s: gave up after %d attempts, the message will be redelivered: %w", rt.def.name, key, wire, attempt+1, err)
		}
		wait := time.Duration(rand.Int64N(int64(backoff))) + backoff/2
		if backoff < 50*time.Millisecond {
			backoff *= 2
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// driverStore is a Store on a storage driver, whose units of work are the
// driver's transactions ([SQLStore]).
type driverStore interface {
	Store
	Driver() hxstore.Store
}

func isConflict(err error) bool {
	if errors.Is(err, ErrConflict) || errors.Is(err, hxstore.ErrSagaConflict) {
		return true
	}
	var pgErr interface{ SQLState() string }
	return errors.As(err, &pgErr) && (pgErr.SQLState() == "40001" || pgErr.SQLState() == "40P01")
}

func (rt *runtime[S]) attempt(ctx context.Context, key, wire string, start bool, ph phase, chk check, call func(*Context[S], *S) error) (err error) {
	tx, err := rt.store.Begin(ctx)
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	in, err := tx.Load(ctx, rt.def.name, key)
	switch {
	case errors.Is(err, ErrNotFound):
		in = nil
	case err != nil:
		return err
	}
	if chk != nil {
		ok, err := chk(in)
		if !ok || err != nil {
			return err
		}
	} else if in == nil || in.Status != Running {
		switch {
		case in == nil && start:
			in = &Instance{Saga: rt.def.name, Key: key, Status: Running}
		case in != nil && in.Status == Compensating:
			rt.log.Debug("saga: event ignored, the instance is compensating", "key", key, "event", wire)
			return nil
		case in != nil && start:
			rt.log.Debug("saga: start event ignored, the instance has finished", "key", key, "event", wire, "status", in.Status)
			return nil
		default:
			return rt.unknown(key, wire)
		}
	}
	var state S
	if len(in.State) > 0 {
		if err := json.Unmarshal(in.State, &state); err != nil {
			return router.Permanent(fmt.Errorf("saga %s key %q: stored state does not decode: %w", rt.def.name, key, err))
		}
	}
	c := &Context[S]{Context: ctx, def: rt.def, key: key, inst: in, tx: tx, phase: ph, wire: wire}
	if err := call(c, &state); err != nil {
		return err
	}
	if c.err != nil {
		return c.err
	}
	p, err := rt.apply(ctx, c, &state)
	if err != nil {
		return err
	}
	if err := rt.tr.write(ctx, tx, p); err != nil {
		return err
	}
	for _, s := range p.sched {
		pt := in.Meta.Timeouts[s.typ]
		pt.ScheduleID = s.id
		in.Meta.Timeouts[s.typ] = pt
	}
	switch {
	case in.Status.Finished() && rt.opt.retention <= 0:
		if in.Version > 0 {
			err = tx.Delete(ctx, in)
		}
	case in.Version == 0:
		err = tx.Insert(ctx, in)
	default:
		err = tx.Update(ctx, in)
	}
	if err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	committed = true
	rt.tr.committed(p)
	return nil
}

func (rt *runtime[S]) unknown(key, wire string) error {
	e := &UnknownInstanceError{Saga: rt.def.name, Key: key, Type: wire}
	switch rt.opt.unknown {
	case UnknownIgnore:
		rt.log.Debug("saga: event for an unknown instance ignored", "key", key, "event", wire)
		return nil
	case UnknownError:
		return e
	default:
		return router.Permanent(e)
	}
}

// apply turns the Context's recorded actions into changes of the instance
// and a plan of messages.
func (rt *runtime[S]) apply(ctx context.Context, c *Context[S], state *S) (*plan, error) {
	in := c.inst
	p := &plan{}
	now := rt.now()
	for _, op := range c.timeouts { // in call order
		rt.cancelTimeout(in, p, op.typ)
		if op.msg == nil {
			continue
		}
		payload, err := json.Marshal(op.msg)
		if err != nil {
			return nil, router.Permanent(fmt.Errorf("saga %s: encode timeout %s: %w", rt.def.name, op.typ, err))
		}
		at := now.Add(op.after)
		tm := TimeoutMessage{Saga: rt.def.name, Key: c.key, Token: router.NewID(), Type: op.typ, Payload: payload}
		if in.Meta.Timeouts == nil {
			in.Meta.Timeouts = make(map[string]PendingTimeout)
		}
		in.Meta.Timeouts[op.typ] = PendingTimeout{Token: tm.Token, At: at}
		wm, err := rt.encode(ctx, c.key, tm)
		if err != nil {
			return nil, err
		}
		p.sched = append(p.sched, &scheduled{at: at, topic: rt.app.TopicFor(tm), msg: wm, typ: op.typ})
	}
	for _, m := range c.comps {
		payload, err := json.Marshal(m)
		if err != nil {
			return nil, router.Permanent(fmt.Errorf("saga %s: encode compensation %s: %w", rt.def.name, m.MessageType(), err))
		}
		if hasNUL(payload) {
			return nil, router.Permanent(fmt.Errorf("saga %s key %q: compensation %s holds a string with a NUL character (\\u0000), which the PostgreSQL driver (jsonb) cannot keep; strip it", rt.def.name, c.key, m.MessageType()))
		}
		step := Step{Type: m.MessageType(), Payload: payload}
		if k, ok := m.(router.Keyed); ok {
			step.Key = k.OrderingKey()
		}
		in.Meta.Compensations = append(in.Meta.Compensations, step)
	}
	for _, m := range c.sends {
		if err := rt.send(ctx, p, c.key, m); err != nil {
			return nil, err
		}
	}
	if c.phase == phaseCompensate {
		if c.stepDone {
			n := len(in.Meta.Compensations) - 1
			in.Meta.Compensations = in.Meta.Compensations[:n]
			if n == 0 {
				rt.finish(in, p, Failed, now)
			} else if err := rt.sendStep(ctx, p, c.key, in, n-1); err != nil {
				return nil, err
			}
		}
	} else {
		switch {
		case c.failure != nil:
			in.Meta.Failure = strings.ReplaceAll(c.failure.Error(), "\x00", "\uFFFD") // jsonb keeps no NUL
			rt.cancelAll(in, p)
			if n := len(in.Meta.Compensations); n > 0 {
				in.Status = Compensating
				if err := rt.sendStep(ctx, p, c.key, in, n-1); err != nil {
					return nil, err
				}
			} else {
				rt.finish(in, p, Failed, now)
			}
		case c.complete:
			rt.finish(in, p, Completed, now)
		}
	}
	rt.record(c, now)
	st, err := json.Marshal(state)
	if err != nil {
		return nil, router.Permanent(fmt.Errorf("saga %s key %q: encode state: %w", rt.def.name, c.key, err))
	}
	if hasNUL(st) {
		return nil, router.Permanent(fmt.Errorf("saga %s key %q: the state holds a string with a NUL character (\\u0000), which the PostgreSQL driver (jsonb) cannot keep; strip it before storing the string in the state", rt.def.name, c.key))
	}
	in.State = st
	return p, nil
}

// record appends the transition to the instance's history; the store
// trims it as MaxHistory says.
func (rt *runtime[S]) record(c *Context[S], now time.Time) {
	in := c.inst
	e := HistoryEntry{At: now.UTC(), Kind: HistoryEvent, Type: c.wire, Status: in.Status}
	switch c.phase {
	case phaseTimeout:
		e.Kind = HistoryTimeout
	case phaseCompensate:
		e.Kind = HistoryCompensation
	}
	switch {
	case c.phase != phaseCompensate && c.failure != nil:
		e.Note = "failed: " + in.Meta.Failure
		if n := len(in.Meta.Compensations); n > 0 {
			e.Note += fmt.Sprintf("; %d compensation(s) to run", n)
		}
	case c.phase != phaseCompensate && c.complete:
		e.Note = "completed"
	}
	in.Meta.History = append(in.Meta.History, e) // the store trims it (MaxHistory)
}

func (rt *runtime[S]) send(ctx context.Context, p *plan, key string, m router.Message) error {
	wm, err := rt.encode(ctx, key, m)
	if err != nil {
		return err
	}
	p.out = append(p.out, outgoing{topic: rt.app.TopicFor(m), msg: wm})
	return nil
}

// encode builds the message with the App's envelope, correlated with the
// message being handled, and tags it with the saga name and key.
func (rt *runtime[S]) encode(ctx context.Context, key string, m router.Message) (*message.Message, error) {
	wm, err := rt.app.NewMessage(ctx, m)
	if err != nil {
		return nil, router.Permanent(fmt.Errorf("saga %s: encode %s: %w", rt.def.name, m.MessageType(), err))
	}
	wm.Metadata.Set(router.KeySagaName, rt.def.name)
	wm.Metadata.Set(router.KeySagaKey, key)
	return wm, nil
}

func (rt *runtime[S]) sendStep(ctx context.Context, p *plan, key string, in *Instance, i int) error {
	s := in.Meta.Compensations[i]
	return rt.send(ctx, p, key, CompensationMessage{Saga: rt.def.name, Key: key, Step: i, Type: s.Type, Payload: s.Payload})
}

// cancelTimeout drops the pending timeout of type typ: a stored one is
// cancelled in the scheduler, one scheduled in this same transition is not
// written at all.
func (rt *runtime[S]) cancelTimeout(in *Instance, p *plan, typ string) {
	pt, ok := in.Meta.Timeouts[typ]
	if !ok {
		return
	}
	delete(in.Meta.Timeouts, typ)
	if pt.ScheduleID != "" {
		p.cancel = append(p.cancel, pt.ScheduleID)
		return
	}
	p.sched = slices.DeleteFunc(p.sched, func(s *scheduled) bool { return s.typ == typ })
}

func (rt *runtime[S]) cancelAll(in *Instance, p *plan) {
	for typ := range in.Meta.Timeouts {
		rt.cancelTimeout(in, p, typ)
	}
	in.Meta.Timeouts = nil
}

func (rt *runtime[S]) finish(in *Instance, p *plan, st Status, now time.Time) {
	rt.cancelAll(in, p)
	in.Status = st
	in.CompletedAt = now
	in.Meta.Compensations = nil
}

// stop stops the saga's background work (its in-memory timeouts).
func (rt *runtime[S]) stop() { rt.tr.stop() }

// onTimeout handles a TimeoutMessage for this saga.
func (rt *runtime[S]) onTimeout(ctx context.Context, m TimeoutMessage) error {
	h := rt.def.timeouts[m.Type]
	if h == nil {
		return router.Permanent(fmt.Errorf("saga %s key %q: no OnTimeout handler for %s", rt.def.name, m.Key, m.Type))
	}
	chk := func(in *Instance) (bool, error) {
		if in == nil || in.Status != Running {
			rt.log.Debug("saga: timeout ignored, the instance is gone or finished", "key", m.Key, "timeout", m.Type)
			return false, nil
		}
		if pt, ok := in.Meta.Timeouts[m.Type]; !ok || pt.Token != m.Token {
			rt.log.Debug("saga: stale timeout ignored", "key", m.Key, "timeout", m.Type)
			return false, nil
		}
		delete(in.Meta.Timeouts, m.Type)
		return true, nil
	}
	return rt.runPhase(ctx, m.Key, m.Type, false, phaseTimeout, chk, func(c *Context[S], s *S) error {
		return h(c, s, m.Payload)
	})
}

// onCompensate runs one compensation step and starts the next. The message
// only triggers the step: what runs is the step the instance holds, so a
// stale message (a redelivery from an earlier instance of the same key)
// cannot run its old payload or skip the current step.
func (rt *runtime[S]) onCompensate(ctx context.Context, m CompensationMessage) error {
	chk := func(in *Instance) (bool, error) {
		if in == nil || in.Status != Compensating || m.Step != len(in.Meta.Compensations)-1 {
			rt.log.Debug("saga: duplicate or stale compensation step ignored", "key", m.Key, "step", m.Step)
			return false, nil
		}
		return true, nil
	}
	err := rt.runPhase(ctx, m.Key, m.Type, false, phaseCompensate, chk, func(c *Context[S], s *S) error {
		st := c.inst.Meta.Compensations[m.Step]
		if h := rt.def.comps[st.Type]; h != nil {
			if err := h(c, s, st.Payload); err != nil {
				return err
			}
		} else {
			c.Publish(rawMessage{typ: st.Type, payload: st.Payload, key: st.Key})
		}
		c.stepDone = true
		return nil
	})
	if err != nil && !isConflict(err) {
		return fmt.Errorf("saga %s key %q: compensation step %d (%s): %w", rt.def.name, m.Key, m.Step, m.Type, err)
	}
	return err
}

// hasNUL reports whether the JSON document b holds the escape \u0000 (a
// NUL character in a string), which PostgreSQL's jsonb refuses. An escaped
// backslash followed by "u0000" is text, not a NUL.
func hasNUL(b []byte) bool {
	for i := 0; i+1 < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		if b[i+1] == 'u' && i+5 < len(b) && string(b[i+2:i+6]) == "0000" {
			return true
		}
		i++ // skip the escaped character
	}
	return false
}
