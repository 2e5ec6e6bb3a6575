package postgres

import (
	"context"
	"time"

	"github.com/hexeract/hexeract/internal/sqlident"
	"github.com/hexeract/hexeract/store"
)

func inboxName(t store.InboxTable) string {
	return sqlident.Name{Schema: t.Schema, Table: t.Table}.Quoted()
}

// InboxMigrations returns the migrations of the inbox table t.
func (e *executor) InboxMigrations(t store.InboxTable) ([]store.Migration, error) {
	idx, err := quotedIndex(t.Schema, t.Table+"_recv_at")
	if err != nil {
		return nil, err
	}
	schema := ""
	if t.Schema != "" {
		schema = `"` + t.Schema + `"`
	}
	return loadMigrations("inbox_", map[string]string{"Table": inboxName(t), "Schema": schema, "ReceivedAtIndex": idx})
}

// InboxClaim inserts (consumer, message id) with ON CONFLICT DO NOTHING.
func (e *executor) InboxClaim(ctx context.Context, t store.InboxTable, consumer, messageID string) (bool, error) {
	tag, err := e.db.Exec(ctx, `INSERT INTO `+inboxName(t)+` (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, consumer, messageID)
	return tag.RowsAffected() == 1, err
}

// InboxCleanup deletes one batch of old inbox rows.
func (e *executor) InboxCleanup(ctx context.Context, t store.InboxTable, olderThan time.Duration, limit int) (int64, error) {
	n := inboxName(t)
	tag, err := e.db.Exec(ctx, `DELETE FROM `+n+` x USING (SELECT consumer, message_id FROM `+n+
		` WHERE received_at < now() - make_interval(secs => $1) LIMIT $2 FOR UPDATE SKIP LOCKED) s
WHERE x.consumer = s.consumer AND x.message_id = s.message_id`, olderThan.Seconds(), limit)
	return tag.RowsAffected(), err
}
