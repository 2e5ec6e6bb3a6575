package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hexeract/hexeract/store"
)

// Status is the life-cycle state of a saga instance.
type Status string

// Instance statuses.
const (
	// Running: the saga handles its events.
	Running Status = "running"
	// Compensating: the saga failed and runs its compensations, last
	// registered first. Events other than its own compensation steps are
	// ignored.
	Compensating Status = "compensating"
	// Completed: the handler called [Context.Complete]. Kept only with a
	// retention period ([WithRetention]); otherwise the instance is deleted.
	Completed Status = "completed"
	// Failed: the handler called [Context.Fail] and every compensation ran.
	// Kept only with a retention period, like Completed.
	Failed Status = "failed"
)

// Finished reports whether the instance is over (completed or failed).
func (s Status) Finished() bool { return s == Completed || s == Failed }

// Instance is one saga instance as a [Store] keeps it: the user state as
// JSON, a version for optimistic concurrency and the runtime's bookkeeping
// (pending timeouts, registered compensations).
type Instance struct {
	Saga    string          // saga name given to [Define]
	Key     string          // correlation key
	Status  Status          // life-cycle status
	Version int64           // incremented by every saved transition; 1 after the first
	State   json.RawMessage // the state struct, JSON encoded
	Meta    Meta            // runtime bookkeeping, stored beside the state
	// CreatedAt, UpdatedAt and CompletedAt are set by the store.
	CreatedAt   time.Time
	UpdatedAt   time.Time
	CompletedAt time.Time // zero while the saga runs
}

// Meta is the runtime's bookkeeping of an instance.
type Meta struct {
	// Timeouts maps the wire name of a pending timeout message to its token.
	// A timeout whose token is not here any more is stale and ignored.
	Timeouts map[string]PendingTimeout `json:"timeouts,omitempty"`
	// Compensations holds the registered compensating messages in
	// registration order; they run from the last to the first.
	Compensations []Step `json:"compensations,omitempty"`
	// Failure is the reason given to [Context.Fail].
	Failure string `json:"failure,omitempty"`
	// History lists the instance's transitions, oldest first: each event,
	// timeout and compensation step that changed it. The runtime appends
	// one entry per transition and the store saves it with the state in the
	// same write, so it never disagrees with it: the SQL store in the
	// table <table>_history (its Tx.Load returns no history, and Insert and
	// Update append the entries they are given), the memory store in the
	// instance. Every store trims it by one rule (store.SagaHistoryKeep:
	// the save that reaches a version that is a multiple of [MaxHistory]
	// deletes the entries before the last MaxHistory); [Store.Get] returns
	// the last MaxHistory entries, and HistoryDropped counts the older
	// ones.
	History []HistoryEntry `json:"history,omitempty"`
	// HistoryDropped is the number of older entries dropped from History.
	HistoryDropped int `json:"history_dropped,omitempty"`
}

// MaxHistory is the number of transitions [Store.Get] returns in
// [Meta.History], on every store (store.SagaHistoryKeep, which also gives
// the trimming rule).
const MaxHistory = store.SagaHistoryKeep

// HistoryKind says what caused a transition recorded in [Meta.History].
type HistoryKind string

// Kinds of transitions.
const (
	// HistoryEvent: a message declared with [StartedBy] or [Handles].
	HistoryEvent HistoryKind = "event"
	// HistoryTimeout: a timeout scheduled with [Context.Timeout] fired.
	HistoryTimeout HistoryKind = "timeout"
	// HistoryCompensation: a compensation step registered with
	// [Context.Compensate] ran (in process through [OnCompensate], or sent
	// on its topic for another service).
	HistoryCompensation HistoryKind = "compensation"
)

// HistoryEntry is one transition of an instance.
type HistoryEntry struct {
	At     time.Time   `json:"at"`
	Kind   HistoryKind `json:"kind"`
	Type   string      `json:"type"`           // wire name of the event, timeout or compensation step
	Status Status      `json:"status"`         // the instance's status after the transition
	Note   string      `json:"note,omitempty"` // for example the failure reason given to Fail
}

// PendingTimeout is a timeout scheduled by [Context.Timeout].
type PendingTimeout struct {
	Token      string    `json:"token"`       // random; carried by the timeout message
	ScheduleID string    `json:"schedule_id"` // scheduler id, used to cancel it
	At         time.Time `json:"at"`          // when it fires
}

// Step is a compensating message registered by [Context.Compensate].
type Step struct {
	Type    string          `json:"type"`    // wire name
	Payload json.RawMessage `json:"payload"` // JSON of the message
	// Key is the message's ordering key ([router.Keyed]), kept for a step
	// sent on to another service.
	Key string `json:"key,omitempty"`
}

func (in *Instance) clone() *Instance {
	c := *in
	c.State = append(json.RawMessage(nil), in.State...)
	c.Meta.Compensations = append([]Step(nil), in.Meta.Compensations...)
	c.Meta.History = append([]HistoryEntry(nil), in.Meta.History...)
	if in.Meta.Timeouts != nil {
		c.Meta.Timeouts = make(map[string]PendingTimeout, len(in.Meta.Timeouts))
		for k, v := range in.Meta.Timeouts {
			c.Meta.Timeouts[k] = v
		}
	}
	return &c
}

// Store persists saga instances. [NewSQLStore] (on any storage driver) and
// [NewMemoryStore] implement it. A Store must be safe for concurrent use.
type Store interface {
	// Begin starts a unit of work; the runtime loads, changes and saves one
	// instance in it and then commits or rolls it back.
	Begin(ctx context.Context) (Tx, error)
	// Get returns one instance, or an error wrapping [ErrNotFound].
	Get(ctx context.Context, saga, key string) (*Instance, error)
	// List returns instances matching filter, most recently updated first.
	List(ctx context.Context, filter Filter) ([]*Instance, error)
	// Purge deletes finished instances that finished before before and
	// returns how many it deleted.
	Purge(ctx context.Context, before time.Time) (int64, error)
}

// Filter selects instances for [Store.List]. The zero value lists up to 100
// instances of every saga.
type Filter struct {
	Saga   string // "" for every saga
	Status Status // "" for every status
	Limit  int    // 0 means 100
}

func (f Filter) limit() int {
	if f.Limit <= 0 {
		return 100
	}
	return f.Limit
}

// Tx is a unit of work of a [Store].
type Tx interface {
	// Load returns the instance, or an error wrapping [ErrNotFound].
	Load(ctx context.Context, saga, key string) (*Instance, error)
	// Insert saves a new instance with version 1. It returns an error
	// wrapping [ErrConflict] when the key is taken (a concurrent start).
	Insert(ctx context.Context, in *Instance) error
	// Update saves in if its stored version is still in.Version, and
	// increments in.Version. Otherwise it returns an error wrapping
	// [ErrConflict].
	Update(ctx context.Context, in *Instance) error
	// Delete removes in if its stored version is still in.Version, or
	// returns an error wrapping [ErrConflict].
	Delete(ctx context.Context, in *Instance) error
	// Commit commits the unit of work. A conflict found at commit wraps
	// [ErrConflict].
	Commit(ctx context.Context) error
	// Rollback abandons the unit of work; after Commit it is a no-op.
	Rollback(ctx context.Context) error
	// Executor returns the storage driver's transaction of the unit of
	// work, in which the runtime writes the transition's messages and
	// timeouts and handlers their own rows ([TxOf]); nil when the unit of
	// work is no database transaction (the [MemoryStore]).
	Executor() store.ExecutorTx
}

// ErrNotFound is wrapped by store errors for a missing instance.
var ErrNotFound = errors.New("saga instance not found")

// ErrConflict is wrapped by store errors when another transition changed or
// created the instance first (optimistic concurrency). The runtime reloads
// the instance and runs the handler again; a conflict that outlasts its
// retries is returned as a retryable (non-permanent) error so the message is
// redelivered.
var ErrConflict = errors.New("saga instance changed concurrently")

// UnknownInstanceError is the error for an event that is not a start event
// and whose instance does not exist (or has finished). With
// [UnknownDeadLetter] (the default) it is permanent.
type UnknownInstanceError struct {
	Saga, Key, Type string
}

// Error names the saga, the key and the event type.
func (e *UnknownInstanceError) Error() string {
	return fmt.Sprintf("saga %s: no running instance with key %q for event %s (not a start event)", e.Saga, e.Key, e.Type)
}
