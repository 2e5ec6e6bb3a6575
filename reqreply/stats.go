package reqreply

import (
	"sync"
	"sync/atomic"

	"github.com/hexeract/hexeract"
)

// Stats are the request/reply counters of one App, as both caller and
// responder. Read them with [StatsFor].
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

// appState is what the package keeps per App: its client, the names of its
// responders and counters.
type appState struct {
	mu     sync.Mutex
	client *Client

	respondersMu sync.Mutex
	responders   map[string]bool // handler names added by Handle

	counters
}

var states sync.Map // *hexeract.App -> *appState

func stateOf(app *hexeract.App) *appState {
	if s, ok := states.Load(app); ok {
		return s.(*appState)
	}
	s, _ := states.LoadOrStore(app, &appState{})
	return s.(*appState)
}

// StatsFor returns the request/reply counters of app.
func StatsFor(app *hexeract.App) Stats {
	s := stateOf(app)
	return Stats{
		Requests:    s.requests.Load(),
		Replies:     s.replies.Load(),
		LateReplies: s.late.Load(),
		Timeouts:    s.timeouts.Load(),
		Handled:     s.handled.Load(),
		Expired:     s.expired.Load(),
	}
}
