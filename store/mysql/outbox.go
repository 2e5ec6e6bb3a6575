package mysql

import (
	"context"
	"time"

	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/internal/sqloutbox"
)

// The outbox's SQL is shared with the other database/sql driver, in
// store/internal/sqloutbox; see its documentation for the claim with a
// lease and per-key order.

func (e *executor) dialect() sqloutbox.Dialect {
	return sqloutbox.Dialect{DB: e.d.db, TxOptions: txOptions(), Notify: e.d.hub.Notify}
}

// OutboxMigrations returns the migrations of t's tables.
func (e *executor) OutboxMigrations(t store.OutboxTable) ([]store.Migration, error) {
	return e.dialect().OutboxMigrations(t), nil
}

// OutboxInsert writes b through the executor.
func (e *executor) OutboxInsert(ctx context.Context, t store.OutboxTable, b *store.OutboxBatch, opts store.OutboxWriteOptions) error {
	return e.dialect().OutboxInsert(ctx, e.q, t, b, opts)
}

// OutboxNotify wakes the relays of this driver value in this process.
func (e *executor) OutboxNotify(ctx context.Context, t store.OutboxTable) error {
	return e.d.hub.Notify(ctx, t.Channel)
}

// OutboxOpenRelay returns the relay's view of the driver's pool.
func (e *executor) OutboxOpenRelay(_ context.Context, cfg store.OutboxRelayConfig) (store.OutboxRelayPool, error) {
	return e.dialect().OpenRelay(cfg), nil
}

// OutboxStats counts the rows of t's tables.
func (e *executor) OutboxStats(ctx context.Context, t store.OutboxTable) (store.OutboxStats, error) {
	return e.dialect().OutboxStats(ctx, e.q, t)
}

// OutboxDeadList lists dead rows after afterSeq.
func (e *executor) OutboxDeadList(ctx context.Context, t store.OutboxTable, afterSeq int64, limit int) ([]store.OutboxDeadRow, error) {
	return e.dialect().OutboxDeadList(ctx, e.q, t, afterSeq, limit)
}

// OutboxDeadMove removes (and with replay re-inserts) one batch of dead rows.
func (e *executor) OutboxDeadMove(ctx context.Context, t store.OutboxTable, ids []string, limit int, replay, notify bool) (int64, error) {
	return e.dialect().OutboxDeadMove(ctx, e.q, t, ids, limit, replay, notify)
}

// OutboxCleanupDelivered deletes one batch of old delivered rows.
func (e *executor) OutboxCleanupDelivered(ctx context.Context, t store.OutboxTable, olderThan time.Duration, limit int) (int64, error) {
	return e.dialect().OutboxCleanupDelivered(ctx, e.q, t, olderThan, limit)
}
