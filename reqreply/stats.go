package reqreply

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract"
)

// Stats are the request/reply counters of one App, as both caller and
// responder. Read them with [StatsFor] or [Client.Stats].
type Stats struct {
	// Requests is the number of requests this App's client published.
	Requests uint64
	// Replies is the number of replies (including error replies) delivered to a waiting caller.
	Replies uint64
	// LateReplies counts replies dropped because no caller waits for their
	// request id any more: the caller timed out or was cancelled, or the reply
	// is a duplicate. A dropped reply is never given to another caller.
	LateReplies uint64
	// Timeouts is the number of requests that ended with [ErrTimeout].
	Timeouts uint64
	// Handled is the number of requests this App's responders answered
	// (with a result or an error).
	Handled uint64
	// Expired is the number of requests this App's responders skipped
	// because the caller's deadline had passed before handling started.
	Expired uint64
}

type counters struct {
	requests, replies, late, timeouts, handled, expired atomic.Uint64
}

// appState is what request/reply keeps per App: its client, the names of its
// responders and the counters. It is attached to the App as a
// [hexeract.Component] (there is no package-level registry): App.Run starts
// the client, App.Close closes it.
type appState struct {
	mu      sync.Mutex
	client  *Client
	started bool // App.Run started the App's components
	closed  bool // App.Close closed them

	respondersMu sync.Mutex
	responders   map[string]bool // handler names added by Handle

	// replyMu guards the reply publisher derived from the App's transport
	// (ReplyTransport) for the responders, opened at the first reply that
	// needs it and closed by Close.
	replyMu     sync.Mutex
	replyPub    message.Publisher
	replyVia    string
	replyClosed bool

	counters
}

// stateOf returns app's request/reply state, attaching it on first use.
// It fails once the App is closed and has no state yet.
func stateOf(app *hexeract.App) (*appState, error) {
	created := false
	st, err := hexeract.AttachOnce(app, func() (*appState, error) { created = true; return &appState{}, nil })
	if err == nil && created {
		// Request/reply is a plugin of the App: App.Plugins lists it. Its
		// state is the Component attached above.
		err = app.Install(pluginName("hexeract.reqreply"))
	}
	return st, err
}

// pluginName is a Plugin that only names itself: what it brings is
// attached by stateOf.
type pluginName string

func (p pluginName) Name() string              { return string(p) }
func (pluginName) Install(*hexeract.App) error { return nil }

// Start starts the App's client, if it has one yet (one created later starts
// at once). It is called by [hexeract.App.Run].
func (s *appState) Start(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started = true
	if s.client == nil {
		return nil
	}
	err := s.client.start()
	if errors.Is(err, ErrClosed) {
		// Closed by the caller before Run: requests fail with ErrClosed
		// until NewClient creates a new one; the App runs regardless.
		return nil
	}
	return err
}

// Close closes the App's client (its reply subscription ends and requests
// fail with [ErrClosed]), then the responders' reply publisher derived
// from the App's transport, if one was opened. It is called by
// [hexeract.App.Close], once the App's handlers have returned.
func (s *appState) Close() error {
	s.mu.Lock()
	s.closed = true
	c := s.client
	s.mu.Unlock()
	var err error
	if c != nil {
		err = c.Close()
	}
	s.replyMu.Lock()
	s.replyClosed = true
	p := s.replyPub
	s.replyPub = nil
	s.replyMu.Unlock()
	if p != nil {
		if cerr := p.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("reqreply: close the reply publisher: %w", cerr))
		}
	}
	return err
}

// replyPublisher returns the App's reply publisher for the reply channel
// via, opening it on first use, or nil when the App's transport does not
// offer that channel (see [ReplyTransport]).
func (s *appState) replyPublisher(app *hexeract.App, via string) (message.Publisher, error) {
	s.replyMu.Lock()
	defer s.replyMu.Unlock()
	if s.replyPub != nil {
		if s.replyVia == via {
			return s.replyPub, nil
		}
		return nil, nil
	}
	if s.replyClosed {
		return nil, errors.New("reqreply: the App is closed; its reply publisher is closed")
	}
	rt := replyTransportOf(app.Publisher())
	if rt == nil || rt.ReplyScheme() != via {
		return nil, nil
	}
	p, err := rt.NewReplyPublisher()
	if err != nil {
		return nil, fmt.Errorf("reqreply: open the reply publisher of the App's transport (%s): %w", via, err)
	}
	s.replyPub, s.replyVia = p, via
	return p, nil
}

func (s *appState) stats() Stats {
	return Stats{
		Requests:    s.requests.Load(),
		Replies:     s.replies.Load(),
		LateReplies: s.late.Load(),
		Timeouts:    s.timeouts.Load(),
		Handled:     s.handled.Load(),
		Expired:     s.expired.Load(),
	}
}

// StatsFor returns the request/reply counters of app (zero for an App that
// never used request/reply).
func StatsFor(app *hexeract.App) Stats {
	if app == nil {
		return Stats{}
	}
	s, ok := hexeract.Attached[*appState](app)
	if !ok {
		return Stats{}
	}
	return s.stats()
}

// Stats returns the request/reply counters of the client's App, the same
// as [StatsFor]: an App has one client at a time, and the counters of the
// clients it had before (closed ones) are included.
func (c *Client) Stats() Stats { return c.state.stats() }
