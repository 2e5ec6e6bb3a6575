// Package audit is a third-party-style Hexeract plugin: an audit log of
// every message the App's handlers take. It uses only the App's public
// plugin API: [hexeract.App.Use] for the middleware that records each
// handler call, and [hexeract.App.Attach] for the Component that flushes
// the records to a sink in the background and flushes the rest when the App
// closes.
//
//	log := audit.New(audit.Config{Sink: os.Stdout})
//	app, err := hexeract.New(hexeract.WithPlugins(log))
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/router"
)

// Outcomes of a [Record].
const (
	OutcomeOK    = "ok"
	OutcomeError = "error"
)

// Record is one handler call: the message a handler took and how it ended.
type Record struct {
	Topic     string        `json:"topic"`
	Handler   string        `json:"handler"`
	MessageID string        `json:"message_id"`
	Type      string        `json:"type"`
	Outcome   string        `json:"outcome"` // OutcomeOK or OutcomeError
	Error     string        `json:"error,omitempty"`
	Duration  time.Duration `json:"duration_ns"`
}

// Config configures a [Log].
type Config struct {
	// Sink receives the records as JSON lines when they are flushed; nil
	// keeps them in memory only ([Log.Records]).
	Sink io.Writer
	// FlushInterval is how often the records are flushed while the App
	// runs; the default is one second. Close flushes the rest.
	FlushInterval time.Duration
}

// Log is the audit-log plugin and the Component it attaches. Install it on
// one App ([hexeract.WithPlugins] or [hexeract.App.Install]).
type Log struct {
	cfg Config

	mu        sync.Mutex
	installed bool
	pending   []Record // recorded, not flushed yet
	flushed   []Record

	flushMu sync.Mutex // one flush at a time, so the sink keeps the order
	stop    chan struct{}
	done    chan struct{}
	started bool
	closed  bool
}

// New returns an audit log configured by cfg.
func New(cfg Config) *Log {
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = time.Second
	}
	return &Log{cfg: cfg, stop: make(chan struct{}), done: make(chan struct{})}
}

// Name names the plugin: "audit-log".
func (*Log) Name() string { return "audit-log" }

// Install adds the recording middleware to every handler of app and
// attaches the Log as a Component, so it starts with app.Run and flushes on
// app.Close. A Log installs on one App only.
func (l *Log) Install(app *hexeract.App) error {
	l.mu.Lock()
	if l.installed {
		l.mu.Unlock()
		return errors.New("audit: this Log is already installed on an App; build one Log per App")
	}
	l.installed = true
	l.mu.Unlock()
	app.Use(l.middleware)
	return app.Attach(l)
}

// middleware records each handler call. It runs inside the App's default
// chain, so a message the chain retries is recorded once per attempt; a
// message whose handler fails for good (router.Permanent) is not retried.
func (l *Log) middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		start := time.Now()
		out, err := h(msg)
		rec := Record{
			Topic:     message.SubscribeTopicFromCtx(msg.Context()),
			Handler:   message.HandlerNameFromCtx(msg.Context()),
			MessageID: msg.Metadata.Get(router.KeyID),
			Type:      msg.Metadata.Get(router.KeyType),
			Outcome:   OutcomeOK,
			Duration:  time.Since(start),
		}
		if rec.MessageID == "" {
			rec.MessageID = msg.UUID
		}
		if err != nil {
			rec.Outcome, rec.Error = OutcomeError, err.Error()
		}
		l.mu.Lock()
		l.pending = append(l.pending, rec)
		l.mu.Unlock()
		return out, err
	}
}

// Start starts the background flush loop; the App calls it from Run.
func (l *Log) Start(context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started || l.closed {
		return nil
	}
	l.started = true
	go l.loop()
	return nil
}

func (l *Log) loop() {
	defer close(l.done)
	t := time.NewTicker(l.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			// A sink that fails now is retried at the next flush.
			_ = l.Flush()
		}
	}
}

// Close stops the flush loop and flushes what is left. The App calls it
// after its handlers finished, so every recorded call is flushed.
func (l *Log) Close() error {
	l.mu.Lock()
	started, closed := l.started, l.closed
	l.closed = true
	l.mu.Unlock()
	if closed {
		return nil
	}
	if started {
		close(l.stop)
		<-l.done
	}
	return l.Flush()
}

// Flush writes the records not flushed yet to the sink and adds them to
// [Log.Records]. On a sink error the records stay pending.
func (l *Log) Flush() error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	batch := l.pending
	l.pending = nil
	l.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if l.cfg.Sink != nil {
		enc := json.NewEncoder(l.cfg.Sink)
		for i, rec := range batch {
			if err := enc.Encode(rec); err != nil {
				l.mu.Lock()
				l.pending = append(batch[i:], l.pending...)
				l.flushed = append(l.flushed, batch[:i]...)
				l.mu.Unlock()
				return err
			}
		}
	}
	l.mu.Lock()
	l.flushed = append(l.flushed, batch...)
	l.mu.Unlock()
	return nil
}

// Records returns the records flushed so far, in the order they were
// recorded.
func (l *Log) Records() []Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Record(nil), l.flushed...)
}
