package saga

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/router"
)

// Metadata keys the runtime sets on every message a saga sends; they are
// defined in package router (router/keys.go), with every other metadata key.
const (
	// Deprecated: use router.KeySagaName.
	MetaSaga = router.KeySagaName
	// Deprecated: use router.KeySagaKey.
	MetaSagaKey = router.KeySagaKey
)

// TimeoutMessage carries a timeout scheduled by [Context.Timeout] back to
// its instance. Its wire name is "hexeract.saga.timeout"; every saga of an
// App shares that topic (mapped by the App's topic function), and the
// runtime routes each message to its saga by name.
type TimeoutMessage struct {
	Saga    string          `json:"saga"`
	Key     string          `json:"key"`
	Token   string          `json:"token"`
	Type    string          `json:"type"`    // wire name of the user's timeout message
	Payload json.RawMessage `json:"payload"` // its JSON
}

// MessageType returns "hexeract.saga.timeout".
func (TimeoutMessage) MessageType() string { return "hexeract.saga.timeout" }

// OrderingKey keeps the messages of one instance in order where the
// transport partitions.
func (m TimeoutMessage) OrderingKey() string { return m.Saga + "/" + m.Key }

// CompensationMessage runs one compensation step of a failed instance. Its
// wire name is "hexeract.saga.compensate", shared by the sagas of an App
// like [TimeoutMessage].
type CompensationMessage struct {
	Saga    string          `json:"saga"`
	Key     string          `json:"key"`
	Step    int             `json:"step"` // index in the instance's compensation list; runs from last to 0
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

// MessageType returns "hexeract.saga.compensate".
func (CompensationMessage) MessageType() string { return "hexeract.saga.compensate" }

// OrderingKey keeps the messages of one instance in order.
func (m CompensationMessage) OrderingKey() string { return m.Saga + "/" + m.Key }

// rawMessage is a message known only by wire name, JSON payload and
// ordering key: a compensation sent on for another service.
type rawMessage struct {
	typ     string
	payload json.RawMessage
	key     string
}

func (r rawMessage) MessageType() string          { return r.typ }
func (r rawMessage) MarshalJSON() ([]byte, error) { return r.payload, nil }
func (r rawMessage) OrderingKey() string          { return r.key }

// stepRunner is a registered saga as the per-App dispatcher sees it.
type stepRunner interface {
	onTimeout(ctx context.Context, m TimeoutMessage) error
	onCompensate(ctx context.Context, m CompensationMessage) error
	// stop stops what the saga runs in the background (in-memory timers).
	stop()
}

// dispatcher routes the shared internal messages of one App to its sagas.
// It is the sagas' per-App state, attached to the App as a
// [hexeract.Component] (there is no package-level registry): App.Close
// stops the sagas' in-memory timers.
type dispatcher struct {
	mu    sync.RWMutex
	sagas map[string]stepRunner
}

// dispatcherFor returns the dispatcher of app, attaching it (and the
// handlers of the shared timeout and compensation topics) on first use.
func dispatcherFor(app *hexeract.App) (*dispatcher, error) {
	return hexeract.AttachOnce(app, func() (*dispatcher, error) {
		d := &dispatcher{sagas: make(map[string]stepRunner)}
		err := hexeract.HandleFunc(app, func(ctx context.Context, m TimeoutMessage) error {
			r, err := d.lookup(m.Saga)
			if err != nil {
				return err
			}
			return r.onTimeout(ctx, m)
		}, hexeract.WithName("saga.timeouts"))
		if err == nil {
			err = hexeract.HandleFunc(app, func(ctx context.Context, m CompensationMessage) error {
				r, err := d.lookup(m.Saga)
				if err != nil {
					return err
				}
				return r.onCompensate(ctx, m)
			}, hexeract.WithName("saga.compensations"))
		}
		if err != nil {
			return nil, err
		}
		return d, nil
	})
}

// Start does nothing: the sagas run in the App's handlers.
func (d *dispatcher) Start(context.Context) error { return nil }

// Close stops the in-memory timeouts of the App's sagas; it is called by
// [hexeract.App.Close] after the handlers stopped.
func (d *dispatcher) Close() error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, r := range d.sagas {
		r.stop()
	}
	return nil
}

func (d *dispatcher) lookup(name string) (stepRunner, error) {
	d.mu.RLock()
	r, ok := d.sagas[name]
	d.mu.RUnlock()
	if !ok {
		return nil, router.Permanent(fmt.Errorf("saga: no saga named %q is registered in this App", name))
	}
	return r, nil
}

func (d *dispatcher) add(name string, r stepRunner) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, dup := d.sagas[name]; dup {
		return fmt.Errorf("saga: a saga named %q is already registered in this App", name)
	}
	d.sagas[name] = r
	return nil
}
