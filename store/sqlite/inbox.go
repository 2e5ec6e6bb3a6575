package sqlite

import (
	"context"
	"time"

	"github.com/hexeract/hexeract/store"
)

// InboxMigrations returns the migrations of the inbox table t.
func (e *executor) InboxMigrations(t store.InboxTable) ([]store.Migration, error) {
	return e.dialect().InboxMigrations(t), nil
}

// InboxClaim records (consumer, messageID) and reports whether it is new.
func (e *executor) InboxClaim(ctx context.Context, t store.InboxTable, consumer, messageID string) (bool, error) {
	return e.dialect().InboxClaim(ctx, e.q, t, consumer, messageID)
}

// InboxCleanup deletes one batch of old inbox rows.
func (e *executor) InboxCleanup(ctx context.Context, t store.InboxTable, olderThan time.Duration, limit int) (int64, error) {
	return e.dialect().InboxCleanup(ctx, e.q, t, olderThan, limit)
}
