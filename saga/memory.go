package saga

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hexeract/hexeract/store"
)

// MemoryStore is an in-memory [Store] for tests and examples. It has the
// same optimistic-concurrency rules and history rule as the SQL store: a unit of work
// sees a snapshot, and Commit fails with [ErrConflict] when another unit of
// work changed the same instance first. Messages sent by a saga on a
// MemoryStore are published after the commit (not atomically) and timeouts
// use in-process timers: nothing survives the process.
type MemoryStore struct {
	mu   sync.Mutex
	rows map[memKey]*Instance
	now  func() time.Time
}

type memKey struct{ saga, key string }

// NewMemoryStore returns an empty in-memory store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{rows: make(map[memKey]*Instance), now: time.Now}
}

// trimHistory applies the history rule of every store
// (store.SagaHistoryKeep): at a version that is a multiple of MaxHistory,
// the entries before the last MaxHistory go. The runtime appends one
// entry per transition.
func trimHistory(in *Instance) {
	if in.Version%MaxHistory != 0 || len(in.Meta.History) <= MaxHistory {
		return
	}
	drop := len(in.Meta.History) - MaxHistory
	in.Meta.History = append([]HistoryEntry(nil), in.Meta.History[drop:]...)
	in.Meta.HistoryDropped += drop
}

// view returns a copy of in showing the last MaxHistory entries, as Get
// does on every store.
func view(in *Instance) *Instance {
	c := in.clone()
	if n := len(c.Meta.History); n > MaxHistory {
		c.Meta.History = c.Meta.History[n-MaxHistory:]
		c.Meta.HistoryDropped += n - MaxHistory
	}
	return c
}

// Begin starts a unit of work.
func (s *MemoryStore) Begin(context.Context) (Tx, error) { return &memTx{s: s}, nil }

// Get returns a copy of one instance with the last [MaxHistory] entries
// of its history.
func (s *MemoryStore) Get(_ context.Context, saga, key string) (*Instance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.rows[memKey{saga, key}]
	if !ok {
		return nil, fmt.Errorf("saga %s key %q: %w", saga, key, ErrNotFound)
	}
	return view(in), nil
}

// load returns a copy of one instance with all the history it holds.
func (s *MemoryStore) load(saga, key string) (*Instance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.rows[memKey{saga, key}]
	if !ok {
		return nil, fmt.Errorf("saga %s key %q: %w", saga, key, ErrNotFound)
	}
	return in.clone(), nil
}

// List returns copies of the instances matching f, most recently updated first.
func (s *MemoryStore) List(_ context.Context, f Filter) ([]*Instance, error) {
	s.mu.Lock()
	out := make([]*Instance, 0, len(s.rows))
	for _, in := range s.rows {
		if (f.Saga == "" || in.Saga == f.Saga) && (f.Status == "" || in.Status == f.Status) {
			out = append(out, view(in))
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].UpdatedAt.Equal(out[j].UpdatedAt) {
			return out[i].UpdatedAt.After(out[j].UpdatedAt)
		}
		return out[i].Key < out[j].Key
	})
	if len(out) > f.limit() {
		out = out[:f.limit()]
	}
	return out, nil
}

// Purge deletes instances that finished before before.
func (s *MemoryStore) Purge(_ context.Context, before time.Time) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for k, in := range s.rows {
		if in.Status.Finished() && !in.CompletedAt.IsZero() && in.CompletedAt.Before(before) {
			delete(s.rows, k)
			n++
		}
	}
	return n, nil
}

type memOp struct {
	kind    byte // 'i'nsert, 'u'pdate, 'd'elete
	in      *Instance
	version int64 // version expected in the store (0 for insert)
}

type memTx struct {
	s    *MemoryStore
	ops  []memOp
	done bool
}

func (t *memTx) Load(_ context.Context, saga, key string) (*Instance, error) {
	return t.s.load(saga, key)
}

func (t *memTx) Insert(_ context.Context, in *Instance) error {
	t.s.mu.Lock()
	_, exists := t.s.rows[memKey{in.Saga, in.Key}]
	t.s.mu.Unlock()
	if exists {
		return fmt.Errorf("saga %s key %q: insert: %w", in.Saga, in.Key, ErrConflict)
	}
	in.Version = 1
	t.ops = append(t.ops, memOp{kind: 'i', in: in.clone()})
	return nil
}

func (t *memTx) Update(_ context.Context, in *Instance) error {
	t.ops = append(t.ops, memOp{kind: 'u', in: in.clone(), version: in.Version})
	in.Version++
	return nil
}

func (t *memTx) Delete(_ context.Context, in *Instance) error {
	t.ops = append(t.ops, memOp{kind: 'd', in: in.clone(), version: in.Version})
	return nil
}

func (t *memTx) Commit(context.Context) error {
	if t.done {
		return fmt.Errorf("saga: memory transaction already finished")
	}
	t.done = true
	s := t.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, op := range t.ops { // check every op before applying any
		cur, exists := s.rows[memKey{op.in.Saga, op.in.Key}]
		switch {
		case op.kind == 'i' && exists,
			op.kind != 'i' && (!exists || cur.Version != op.version):
			return fmt.Errorf("saga %s key %q: %w", op.in.Saga, op.in.Key, ErrConflict)
		}
	}
	now := s.now()
	for _, op := range t.ops {
		k := memKey{op.in.Saga, op.in.Key}
		switch op.kind {
		case 'd':
			delete(s.rows, k)
		case 'i':
			op.in.Version, op.in.CreatedAt, op.in.UpdatedAt = 1, now, now
			s.rows[k] = op.in
		case 'u':
			op.in.CreatedAt = s.rows[k].CreatedAt
			op.in.Version, op.in.UpdatedAt = op.version+1, now
			trimHistory(op.in)
			s.rows[k] = op.in
		}
	}
	return nil
}

// Executor returns nil: the memory store has no database transaction.
func (t *memTx) Executor() store.ExecutorTx { return nil }

func (t *memTx) Rollback(context.Context) error {
	t.done = true
	return nil
}
