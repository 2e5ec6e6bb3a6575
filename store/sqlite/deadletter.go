package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/internal/sqldeadletter"
)

// deadLetterMigration1 creates a dead-letter table and its audit table;
// {{T}} and {{A}} are their quoted names, {{t}} the table name for index
// names. Instants are INTEGER unix microseconds (UTC).
const deadLetterMigration1 = `CREATE TABLE IF NOT EXISTS {{T}} (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	message_id      TEXT    NOT NULL,
	payload         BLOB    NOT NULL,
	metadata        TEXT    NOT NULL,
	fault_type      TEXT    NOT NULL,
	fault_error     TEXT    NOT NULL,
	fault           TEXT    NOT NULL,
	topic           TEXT    NOT NULL,
	handler         TEXT    NOT NULL,
	consumer_group  TEXT    NOT NULL,
	attempts        INTEGER NOT NULL,
	retries         INTEGER NOT NULL,
	first_failed_at INTEGER NOT NULL,
	last_failed_at  INTEGER NOT NULL,
	dead_at         INTEGER NOT NULL,
	UNIQUE (message_id, handler, consumer_group)
)
-- +step
CREATE INDEX IF NOT EXISTS "{{t}}_topic_idx" ON {{T}} (topic, id)
-- +step
CREATE INDEX IF NOT EXISTS "{{t}}_group_idx" ON {{T}} (fault_type, handler, id)
-- +step
CREATE INDEX IF NOT EXISTS "{{t}}_handler_idx" ON {{T}} (handler, id)
-- +step
CREATE INDEX IF NOT EXISTS "{{t}}_dead_at_idx" ON {{T}} (dead_at)
-- +step
CREATE TABLE IF NOT EXISTS {{A}} (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	at       INTEGER NOT NULL,
	operator TEXT    NOT NULL,
	action   TEXT    NOT NULL,
	selector TEXT    NOT NULL,
	affected INTEGER NOT NULL,
	outcome  TEXT    NOT NULL
)`

func liteDeadLetterTable(t store.DeadLetterTable, suffix string) string {
	return `"` + t.Table + suffix + `"`
}

func (e *executor) DeadLetterMigrations(t store.DeadLetterTable) ([]store.Migration, error) {
	if t.Schema != "" {
		return nil, fmt.Errorf("sqlite: dead-letter table %q: SQLite has no schemas; name the table alone", t.Name())
	}
	r := strings.NewReplacer("{{T}}", liteDeadLetterTable(t, ""), "{{A}}", liteDeadLetterTable(t, "_audit"), "{{t}}", t.Table)
	return []store.Migration{{Version: 1, Name: "create dead-letter and audit tables", SQL: r.Replace(deadLetterMigration1)}}, nil
}

func (e *executor) dl() sqldeadletter.Ops {
	var d sqldeadletter.Dialect
	d = sqldeadletter.Dialect{
		Table:       liteDeadLetterTable,
		Placeholder: func(int) string { return "?" },
		Time:        func(t time.Time) any { return t.UnixMicro() },
		ScanTime: func() (any, func() time.Time) {
			var us int64
			return &us, func() time.Time { return time.UnixMicro(us).UTC() }
		},
		ForUpdate: "", // the IMMEDIATE transaction holds the write lock
		Insert: func(ctx context.Context, db sqldeadletter.DB, t store.DeadLetterTable, cols []string, args []any) (int64, error) {
			sql := sqldeadletter.InsertSQL(d, liteDeadLetterTable(t, ""), cols) +
				" ON CONFLICT (message_id, handler, consumer_group) DO UPDATE SET " +
				sqldeadletter.UpsertSet(func(c string) string { return "excluded." + c }) + " RETURNING id"
			return sqldeadletter.QueryID(ctx, db, sql, args)
		},
		InsertAudit: func(ctx context.Context, db sqldeadletter.DB, t store.DeadLetterTable, cols []string, args []any) (int64, error) {
			return sqldeadletter.QueryID(ctx, db, sqldeadletter.InsertSQL(d, liteDeadLetterTable(t, "_audit"), cols)+" RETURNING id", args)
		},
	}
	return sqldeadletter.Ops{D: d, DB: sqldeadletter.SQL(e.q)}
}

func (e *executor) DeadLetterInsert(ctx context.Context, t store.DeadLetterTable, row *store.DeadLetterRow) (int64, error) {
	return e.dl().Insert(ctx, t, row)
}

func (e *executor) DeadLetterList(ctx context.Context, t store.DeadLetterTable, f store.DeadLetterFilter) ([]store.DeadLetterRow, error) {
	return e.dl().List(ctx, t, f)
}

func (e *executor) DeadLetterIDs(ctx context.Context, t store.DeadLetterTable, f store.DeadLetterFilter) ([]int64, error) {
	return e.dl().IDs(ctx, t, f)
}

func (e *executor) DeadLetterCounts(ctx context.Context, t store.DeadLetterTable, f store.DeadLetterFilter) ([]store.DeadLetterCount, error) {
	return e.dl().Counts(ctx, t, f)
}

func (e *executor) DeadLetterGroups(ctx context.Context, t store.DeadLetterTable, f store.DeadLetterFilter) ([]store.DeadLetterGroup, error) {
	return e.dl().Groups(ctx, t, f)
}

func (e *executor) DeadLetterTake(ctx context.Context, t store.DeadLetterTable, id int64) (*store.DeadLetterRow, error) {
	return e.dl().Take(ctx, t, id)
}

func (e *executor) DeadLetterDelete(ctx context.Context, t store.DeadLetterTable, ids []int64) (int64, error) {
	return e.dl().Delete(ctx, t, ids)
}

func (e *executor) DeadLetterUpdate(ctx context.Context, t store.DeadLetterTable, id int64, payload []byte, metadata string) (bool, error) {
	return e.dl().Update(ctx, t, id, payload, metadata)
}

func (e *executor) DeadLetterAuditInsert(ctx context.Context, t store.DeadLetterTable, a *store.DeadLetterAudit) (int64, error) {
	return e.dl().AuditInsert(ctx, t, a)
}

func (e *executor) DeadLetterAuditUpdate(ctx context.Context, t store.DeadLetterTable, id, n int64, outcome string) error {
	return e.dl().AuditUpdate(ctx, t, id, n, outcome)
}

func (e *executor) DeadLetterAuditList(ctx context.Context, t store.DeadLetterTable, limit int) ([]store.DeadLetterAudit, error) {
	return e.dl().AuditList(ctx, t, limit)
}
