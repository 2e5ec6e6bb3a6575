package store

import (
	"context"
	"time"
)

// InboxExecutor is the part of [Executor] the inbox component uses.
// Every driver implements it in its own inbox.go.
type InboxExecutor interface {
	// InboxMigrations returns the driver's migrations of the inbox table t,
	// applied with [Store.Migrate] under t.Component().
	InboxMigrations(t InboxTable) ([]Migration, error)
	// InboxClaim records (consumer, messageID) through this executor (the
	// transaction of the message's effect) and reports whether it is new.
	// A concurrent claim of the same pair waits for the first to end.
	InboxClaim(ctx context.Context, t InboxTable, consumer, messageID string) (bool, error)
	// InboxCleanup deletes up to limit rows older than olderThan and
	// returns how many it deleted.
	InboxCleanup(ctx context.Context, t InboxTable, olderThan time.Duration, limit int) (int64, error)
}

// InboxTable names an inbox table in Schema (a PostgreSQL schema or a
// MySQL database; empty for the default).
type InboxTable struct {
	Schema string
	Table  string
}

// Name returns "schema.table" or "table".
func (t InboxTable) Name() string {
	if t.Schema == "" {
		return t.Table
	}
	return t.Schema + "." + t.Table
}

// Component is the name under which the table's migrations are recorded.
func (t InboxTable) Component() string { return "inbox:" + t.Name() }
