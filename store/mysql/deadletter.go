package mysql

import (
	"context"
	"strings"
	"time"

	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/internal/sqldeadletter"
)

// deadLetterMigration1 creates a dead-letter table and its audit table;
// {{T}} and {{A}} are their quoted names. The indexes are part of the
// CREATE TABLE statements, so a migration interrupted between its
// statements (MySQL commits DDL implicitly) completes on the next run.
const deadLetterMigration1 = `CREATE TABLE IF NOT EXISTS {{T}} (
	id              BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
	message_id      VARCHAR(255) NOT NULL,
	payload         LONGBLOB     NOT NULL,
	metadata        LONGTEXT     NOT NULL,
	fault_type      VARCHAR(255) NOT NULL,
	fault_error     TEXT         NOT NULL,
	fault           LONGTEXT     NOT NULL,
	topic           VARCHAR(255) NOT NULL,
	handler         VARCHAR(255) NOT NULL,
	consumer_group  VARCHAR(255) NOT NULL,
	attempts        INT          NOT NULL,
	retries         INT          NOT NULL,
	first_failed_at DATETIME(6)  NOT NULL,
	last_failed_at  DATETIME(6)  NOT NULL,
	dead_at         DATETIME(6)  NOT NULL,
	UNIQUE KEY message_handler_group (message_id, handler, consumer_group),
	KEY topic_idx (topic, id),
	KEY group_idx (fault_type, handler, id),
	KEY handler_idx (handler, id),
	KEY dead_at_idx (dead_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
-- +step
CREATE TABLE IF NOT EXISTS {{A}} (
	id       BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
	at       DATETIME(6)  NOT NULL,
	operator VARCHAR(255) NOT NULL,
	action   VARCHAR(64)  NOT NULL,
	selector LONGTEXT     NOT NULL,
	affected BIGINT       NOT NULL,
	outcome  TEXT         NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`

func myDeadLetterTable(t store.DeadLetterTable, suffix string) string {
	if t.Schema == "" {
		return "`" + t.Table + suffix + "`"
	}
	return "`" + t.Schema + "`.`" + t.Table + suffix + "`"
}

func (e *executor) DeadLetterMigrations(t store.DeadLetterTable) ([]store.Migration, error) {
	r := strings.NewReplacer("{{T}}", myDeadLetterTable(t, ""), "{{A}}", myDeadLetterTable(t, "_audit"))
	return []store.Migration{{Version: 1, Name: "create dead-letter and audit tables", SQL: r.Replace(deadLetterMigration1)}}, nil
}

func (e *executor) dl() sqldeadletter.Ops {
	var d sqldeadletter.Dialect
	q := e.q
	d = sqldeadletter.Dialect{
		Table:       myDeadLetterTable,
		Placeholder: func(int) string { return "?" },
		Time:        func(t time.Time) any { return t.UTC() },
		ScanTime: func() (any, func() time.Time) {
			var t time.Time
			return &t, func() time.Time { return t.UTC() }
		},
		ForUpdate: " FOR UPDATE",
		Insert: func(ctx context.Context, _ sqldeadletter.DB, t store.DeadLetterTable, cols []string, args []any) (int64, error) {
			sql := sqldeadletter.InsertSQL(d, myDeadLetterTable(t, ""), cols) +
				" ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id), " +
				sqldeadletter.UpsertSet(func(c string) string { return "VALUES(" + c + ")" })
			return sqldeadletter.ExecInsertID(ctx, q, sql, args)
		},
		InsertAudit: func(ctx context.Context, _ sqldeadletter.DB, t store.DeadLetterTable, cols []string, args []any) (int64, error) {
			return sqldeadletter.ExecInsertID(ctx, q, sqldeadletter.InsertSQL(d, myDeadLetterTable(t, "_audit"), cols), args)
		},
	}
	return sqldeadletter.Ops{D: d, DB: sqldeadletter.SQL(q)}
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
