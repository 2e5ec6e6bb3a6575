package mysql

import (
	"context"
	"errors"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/internal/sqlsaga"
)

// The saga store's SQL is shared with the other database/sql driver, in
// store/internal/sqlsaga.

func (e *executor) sagaDialect() sqlsaga.Dialect {
	return sqlsaga.Dialect{SQLite: false, DB: e.d.db, TxOptions: txOptions(), Conflict: sagaConflict}
}

// SagaMigrations returns the migrations of t's tables.
func (e *executor) SagaMigrations(t store.SagaTable) ([]store.Migration, error) {
	return e.sagaDialect().SagaMigrations(t), nil
}

// SagaBegin starts a transaction.
func (e *executor) SagaBegin(ctx context.Context) (store.ExecutorTx, error) { return e.d.Begin(ctx) }

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

// sagaConflict reports a duplicate key (1062), a deadlock (1213), a lock
// wait timeout (1205) or MariaDB's "record has changed since last read"
// (1020): a lost optimistic-concurrency race, retried by the runtime.
func sagaConflict(err error) bool {
	var me *gomysql.MySQLError
	if !errors.As(err, &me) {
		return false
	}
	switch me.Number {
	case 1062, 1213, 1205, 1020:
		return true
	}
	return false
}
