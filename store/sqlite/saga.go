package sqlite

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/internal/sqlexec"
	"github.com/hexeract/hexeract/store/internal/sqlsaga"
)

// The saga store's SQL is shared with the other database/sql driver, in
// store/internal/sqlsaga.

func (e *executor) sagaDialect() sqlsaga.Dialect {
	return sqlsaga.Dialect{SQLite: true, DB: e.d.db, TxOptions: nil, Conflict: sagaConflict}
}

// SagaMigrations returns the migrations of t's tables.
func (e *executor) SagaMigrations(t store.SagaTable) ([]store.Migration, error) {
	return e.sagaDialect().SagaMigrations(t), nil
}

// SagaBegin starts a transaction. SQLite has one writer, and a
// transaction that waits for the write lock sleeps in SQLite's busy
// handler (1, 2, 5, 10 ... ms) rather than being woken when the lock is
// free; so the saga transitions of one driver take turns on a semaphore
// in Go first, and only other writers (other processes, other components)
// meet the busy handler.
func (e *executor) SagaBegin(ctx context.Context) (store.ExecutorTx, error) {
	d := e.d
	d.sagaOnce.Do(func() { d.sagaSem = make(chan struct{}, 1) })
	select {
	case d.sagaSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var once sync.Once
	release := func() { once.Do(func() { <-d.sagaSem }) }
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		release()
		return nil, err
	}
	return &executor{d: d, q: tx, Tx: sqlexec.Tx{Tx: tx, Done: release}}, nil
}

// SagaNest returns a savepoint of this transaction when st is this
// driver's database handle (a driver on the same *sql.DB).
func (e *executor) SagaNest(ctx context.Context, st store.Store) (store.ExecutorTx, bool, error) {
	d, ok := st.(*Driver)
	if !ok || d.db != e.d.db || e.Tx.Tx == nil || e.Savepoint != "" {
		return nil, false, nil
	}
	sp, err := e.Nest(ctx, "hexeract_saga")
	if err != nil {
		return nil, false, err
	}
	return &executor{d: d, q: sp.Tx, Tx: sp}, true, nil
}

// SagaLoad reads one instance without its history.
func (e *executor) SagaLoad(ctx context.Context, t store.SagaTable, saga, key string) (store.SagaRow, bool, error) {
	return e.sagaDialect().Load(ctx, e.q, t, saga, key)
}

// SagaInsert creates the instance with version 1.
func (e *executor) SagaInsert(ctx context.Context, t store.SagaTable, r store.SagaRow, history []store.SagaHistoryRow) error {
	return e.sagaDialect().Insert(ctx, e.q, t, r, history)
}

// SagaUpdate saves the instance if its stored version is still r.Version.
func (e *executor) SagaUpdate(ctx context.Context, t store.SagaTable, r store.SagaRow, history []store.SagaHistoryRow) error {
	return e.sagaDialect().Update(ctx, e.q, t, r, history)
}

// SagaDelete removes the instance and its history.
func (e *executor) SagaDelete(ctx context.Context, t store.SagaTable, saga, key string, version int64) error {
	return e.sagaDialect().Delete(ctx, e.q, t, saga, key, version)
}

// SagaGet reads one instance with the last limit entries of its history.
func (e *executor) SagaGet(ctx context.Context, t store.SagaTable, saga, key string, limit int) (store.SagaRow, []store.SagaHistoryRow, int64, bool, error) {
	return e.sagaDialect().Get(ctx, e.q, t, saga, key, limit)
}

// SagaList returns instances matching f.
func (e *executor) SagaList(ctx context.Context, t store.SagaTable, f store.SagaFilter) ([]store.SagaRow, error) {
	return e.sagaDialect().List(ctx, e.q, t, f)
}

// SagaPurge deletes the instances that finished before before.
func (e *executor) SagaPurge(ctx context.Context, t store.SagaTable, before time.Time) (int64, error) {
	return e.sagaDialect().Purge(ctx, e.Tx.Tx, t, before)
}

// sagaConflict reports a primary key or unique constraint violation
// (SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE) or a busy
// database: a lost race, retried by the runtime.
func sagaConflict(err error) bool {
	var se interface{ Code() int }
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() {
	case 1555, 2067, 5, 517: // 517: SQLITE_BUSY_SNAPSHOT
		return true
	}
	return false
}
