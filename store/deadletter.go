package store

import (
	"context"
	"time"
)

// DeadLetterExecutor is the part of [Executor] the dead-letter store
// (package deadletter) uses: the table of dead letters, its queries and its
// audit table. Every driver implements it in its own deadletter.go. The
// operations' logic (snapshots, dry runs, retry through the outbox, the
// audit trail) lives in package deadletter; these methods are single
// statements that run on the executor they are called on (the pool, or the
// transaction of an ExecutorTx).
type DeadLetterExecutor interface {
	// DeadLetterMigrations returns the driver's migrations of the tables
	// named by t, applied with [Store.Migrate] under t.Component().
	DeadLetterMigrations(t DeadLetterTable) ([]Migration, error)
	// DeadLetterInsert writes row and returns its id. A row with the same
	// message id, handler and consumer group (a redelivered copy of a dead
	// letter already written) is overwritten in place, keeping its id and
	// first failure time, so a dead letter is never doubled.
	DeadLetterInsert(ctx context.Context, t DeadLetterTable, row *DeadLetterRow) (int64, error)
	// DeadLetterList returns the rows f selects, in id order, at most
	// f.Limit of them (0: all).
	DeadLetterList(ctx context.Context, t DeadLetterTable, f DeadLetterFilter) ([]DeadLetterRow, error)
	// DeadLetterIDs returns the ids of the rows f selects, in id order.
	DeadLetterIDs(ctx context.Context, t DeadLetterTable, f DeadLetterFilter) ([]int64, error)
	// DeadLetterCounts counts the rows f selects per original topic, with
	// the oldest dead_at of each, in topic order.
	DeadLetterCounts(ctx context.Context, t DeadLetterTable, f DeadLetterFilter) ([]DeadLetterCount, error)
	// DeadLetterGroups counts the rows f selects per fault type and
	// handler, with the first and last failure seen, largest group first.
	DeadLetterGroups(ctx context.Context, t DeadLetterTable, f DeadLetterFilter) ([]DeadLetterGroup, error)
	// DeadLetterTake returns the row id and locks it until the
	// transaction ends (SELECT ... FOR UPDATE where the database has it;
	// SQLite's transactions hold the write lock already); nil when it is
	// gone. Call it in a transaction.
	DeadLetterTake(ctx context.Context, t DeadLetterTable, id int64) (*DeadLetterRow, error)
	// DeadLetterDelete deletes the rows with the given ids and returns how
	// many it deleted.
	DeadLetterDelete(ctx context.Context, t DeadLetterTable, ids []int64) (int64, error)
	// DeadLetterUpdate replaces the payload and metadata (a JSON object of
	// strings) of row id; false when there is no such row.
	DeadLetterUpdate(ctx context.Context, t DeadLetterTable, id int64, payload []byte, metadata string) (bool, error)
	// DeadLetterAuditInsert writes an audit row and returns its id.
	DeadLetterAuditInsert(ctx context.Context, t DeadLetterTable, a *DeadLetterAudit) (int64, error)
	// DeadLetterAuditUpdate adds n to the count of audit row id and sets
	// its outcome (when not empty).
	DeadLetterAuditUpdate(ctx context.Context, t DeadLetterTable, id, n int64, outcome string) error
	// DeadLetterAuditList returns the newest audit rows first, at most
	// limit (0: all).
	DeadLetterAuditList(ctx context.Context, t DeadLetterTable, limit int) ([]DeadLetterAudit, error)
}

// DeadLetterTable names the dead-letter table Table and its audit table
// Table_audit, in Schema (a PostgreSQL schema or a MySQL database; empty for
// the connection's default). Package deadletter validates the names;
// drivers quote them.
type DeadLetterTable struct {
	Schema string
	Table  string
}

// Name returns "schema.table" or "table".
func (t DeadLetterTable) Name() string {
	if t.Schema == "" {
		return t.Table
	}
	return t.Schema + "." + t.Table
}

// Component is the name under which the tables' migrations are recorded.
func (t DeadLetterTable) Component() string { return "deadletter:" + t.Name() }

// DeadLetterRow is one dead letter as stored.
type DeadLetterRow struct {
	ID        int64  // assigned by the database, increasing
	MessageID string // the message's UUID
	Payload   []byte
	Metadata  string // JSON object of strings, without the fault keys
	// FaultType and FaultError are the fault's error type ("panic" for a
	// panic) and text; Fault is the whole fault record as JSON
	// (middleware.Fault).
	FaultType  string
	FaultError string
	Fault      string
	Topic      string // the topic the message was consumed from
	Handler    string
	Group      string // consumer group ("" when unknown)
	Attempts   int    // handler calls of the last failure
	Retries    int    // times an operator retried this message from the store
	// FirstFailedAt and LastFailedAt are the first and last failed
	// attempts; DeadAt is when the row was written.
	FirstFailedAt time.Time
	LastFailedAt  time.Time
	DeadAt        time.Time
}

// DeadLetterFilter selects dead letters. Zero fields select everything.
type DeadLetterFilter struct {
	IDs       []int64 // only these ids
	Topic     string  // original topic, exact
	Handler   string  // exact
	FaultType string  // exact
	// Exact makes an empty Handler or FaultType match an empty value
	// instead of any (a failure group whose handler is unknown).
	Exact bool
	// ErrorContains matches the error text, without case.
	ErrorContains string
	// Since and Until bound dead_at: Since <= dead_at < Until.
	Since, Until time.Time
	AfterID      int64 // rows with a larger id (a cursor)
	Limit        int   // at most this many rows (0: no limit)
}

// DeadLetterCount is the number of dead letters of one original topic.
type DeadLetterCount struct {
	Topic  string
	Count  int64
	Oldest time.Time // the oldest dead_at
}

// DeadLetterGroup is the number of dead letters of one fault type and
// handler.
type DeadLetterGroup struct {
	FaultType string
	Handler   string
	Count     int64
	FirstSeen time.Time // the earliest first failure
	LastSeen  time.Time // the latest last failure
	Example   string    // the error text of the newest row
}

// DeadLetterAudit is one mutation of the dead-letter store: who did what,
// to how many dead letters, when.
type DeadLetterAudit struct {
	ID       int64
	At       time.Time
	Operator string
	Action   string // retry, edit, delete
	Selector string // what the action was applied to, as JSON
	Count    int64  // dead letters affected
	Outcome  string // running, done, interrupted, failed: ...
}
