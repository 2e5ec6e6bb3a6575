package store

import (
	"context"
	"errors"
	"time"
)

// SagaExecutor is the part of [Executor] the saga component uses: the
// saga store's unit of work (load, then insert, update or delete with
// optimistic concurrency on the version, the history written with the
// state) and the operations queries (get, list, purge). Every driver
// implements it in its own saga.go.
type SagaExecutor interface {
	// SagaMigrations returns the driver's migrations of the saga tables
	// named by t, applied with [Store.Migrate] under t.Component().
	SagaMigrations(t SagaTable) ([]Migration, error)
	// SagaBegin starts the unit of work of one saga transition: a
	// transaction of this driver ([Driver.TxOf] reaches it), which the
	// driver may open lazily with the first SagaLoad and whose saves it may
	// defer to Commit, to save round trips. A save deferred that way
	// reports its conflict from Commit, wrapping [ErrSagaConflict]. Called
	// on the pool executor ([Store.Executor]).
	SagaBegin(ctx context.Context) (ExecutorTx, error)
	// SagaNest returns a unit of work nested in this transaction (a
	// savepoint: its Commit releases it, its Rollback undoes what it did
	// and leaves the outer transaction usable), when this executor is a
	// transaction on the same database as st; ok is false otherwise (the
	// pool executor, another driver, another database). The saga runtime
	// uses it inside the inbox middleware's transaction.
	SagaNest(ctx context.Context, st Store) (tx ExecutorTx, ok bool, err error)
	// SagaLoad reads one instance without its history; found is false
	// when there is none.
	SagaLoad(ctx context.Context, t SagaTable, saga, key string) (row SagaRow, found bool, err error)
	// SagaInsert creates the instance with version 1 and appends history
	// to its history. A taken key (a concurrent start) is an error
	// wrapping [ErrSagaConflict], here or at Commit.
	SagaInsert(ctx context.Context, t SagaTable, row SagaRow, history []SagaHistoryRow) error
	// SagaUpdate saves row if the stored version is still row.Version,
	// and stores version row.Version+1; it appends history to the
	// instance's history, trimmed as [SagaHistoryKeep] says. A version
	// that moved is an error wrapping [ErrSagaConflict], here or at
	// Commit.
	SagaUpdate(ctx context.Context, t SagaTable, row SagaRow, history []SagaHistoryRow) error
	// SagaDelete removes the instance and its history if the stored
	// version is still version, or fails wrapping [ErrSagaConflict].
	SagaDelete(ctx context.Context, t SagaTable, saga, key string, version int64) error
	// SagaGet reads one instance with the last limit entries of its
	// history (oldest first) and the number of history entries stored for
	// it (total); found is false when there is none.
	SagaGet(ctx context.Context, t SagaTable, saga, key string, limit int) (row SagaRow, history []SagaHistoryRow, total int64, found bool, err error)
	// SagaList returns instances matching f, most recently updated first
	// (then by key), without their history.
	SagaList(ctx context.Context, t SagaTable, f SagaFilter) ([]SagaRow, error)
	// SagaPurge deletes the instances that finished (CompletedAt set)
	// before before, with their history, and returns how many instances
	// it deleted.
	SagaPurge(ctx context.Context, t SagaTable, before time.Time) (int64, error)
}

// ErrSagaConflict is wrapped by the errors of [SagaExecutor] when another
// transition created or changed the instance first (optimistic
// concurrency), including a serialization failure or a deadlock that the
// database resolved by aborting the transaction.
var ErrSagaConflict = errors.New("store: saga instance changed concurrently")

// SagaHistoryKeep is the number of history entries of an instance that
// every saga store shows, and the trimming rule of every store (the
// drivers and the saga package's in-memory store alike): history entries
// carry the version they were saved with, and the save that brings an
// instance to a version that is a multiple of SagaHistoryKeep deletes, in
// the same transaction, the entries of the versions before the last
// SagaHistoryKeep. So a store holds between SagaHistoryKeep and
// 2*SagaHistoryKeep-1 entries of a long-lived instance (one per
// transition), trims once every SagaHistoryKeep transitions rather than at
// each, and [SagaExecutor.SagaGet] returns the last SagaHistoryKeep.
const SagaHistoryKeep = 50

// SagaTable names the tables of one saga store: Table (instances) and
// Table_history, in Schema (a PostgreSQL schema or a MySQL database; empty
// for the connection's default). The saga component validates the names;
// drivers quote them.
type SagaTable struct {
	Schema string
	Table  string
}

// Name returns "schema.table" or "table".
func (t SagaTable) Name() string {
	if t.Schema == "" {
		return t.Table
	}
	return t.Schema + "." + t.Table
}

// Component is the name under which the tables' migrations are recorded.
func (t SagaTable) Component() string { return "saga:" + t.Name() }

// SagaRow is one saga instance as a driver stores it.
type SagaRow struct {
	Saga, Key string
	Status    string
	// Version is the stored version; for SagaUpdate, the version read.
	Version int64
	State   []byte // JSON
	Meta    []byte // JSON object of the runtime's bookkeeping, without the history
	// CreatedAt and UpdatedAt are set by the driver on writes.
	CreatedAt, UpdatedAt time.Time
	CompletedAt          time.Time // zero while the saga runs (SQL NULL)
}

// SagaHistoryRow is one entry of an instance's history.
type SagaHistoryRow struct {
	// Version is the instance's version after the transition; set by the
	// driver on writes (the saved version).
	Version int64
	At      time.Time
	Kind    string
	Type    string
	Status  string
	Note    string
}

// SagaFilter selects instances for [SagaExecutor.SagaList].
type SagaFilter struct {
	Saga   string // "" for every saga
	Status string // "" for every status
	Limit  int    // at least 1
}
