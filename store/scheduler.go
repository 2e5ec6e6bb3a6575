package store

import (
	"context"
	"log/slog"
	"time"
)

// SchedulerExecutor is the part of [Executor] the scheduler component uses:
// storing delayed messages in the caller's transaction, claiming the due
// ones inside the hand-off transaction, cancel and reschedule, the cron
// lease and fired-ticks table, and the operations queries. Every driver
// implements it in its own scheduler.go.
type SchedulerExecutor interface {
	// SchedulerMigrations returns the driver's migrations of the scheduler
	// tables named by t, applied with [Store.Migrate] under t.Component().
	SchedulerMigrations(t SchedulerTable) ([]Migration, error)
	// SchedulerInsert stores rows through this executor (the caller's
	// transaction). When the earliest due time of rows is within
	// notifyWithin of now (and notifyWithin >= 0), it announces it on
	// t.Channel, delivered when the transaction commits where the
	// database can (PostgreSQL), in process otherwise.
	SchedulerInsert(ctx context.Context, t SchedulerTable, rows []SchedulerRow, notifyWithin time.Duration) error
	// SchedulerClaim deletes up to limit due rows (due at or before the
	// database's now), earliest first, skipping rows another transaction
	// holds, and returns them with the earliest due time of the rows left.
	// It must run inside a transaction: the caller hands the rows off in it
	// and commits, or rolls back and the rows stay scheduled.
	SchedulerClaim(ctx context.Context, t SchedulerTable, limit int) (SchedulerClaim, error)
	// SchedulerClaimOne deletes the row id if it is due and free, inside
	// the caller's transaction; ok is false when there is no such row.
	SchedulerClaimOne(ctx context.Context, t SchedulerTable, id string) (row SchedulerClaimed, ok bool, err error)
	// SchedulerPushBack postpones the rows ids that are still due: by 1 s
	// after their first refusal, doubling up to a minute, counting the
	// refusals (metadata RefusalsKey) and keeping lastError (LastErrorKey).
	SchedulerPushBack(ctx context.Context, t SchedulerTable, ids []string, lastError string) error
	// SchedulerCancel deletes the row id; found is false when there is none.
	SchedulerCancel(ctx context.Context, t SchedulerTable, id string) (found bool, err error)
	// SchedulerReschedule moves the row id to at, announcing it as
	// SchedulerInsert does; found is false when there is none.
	SchedulerReschedule(ctx context.Context, t SchedulerTable, id string, at time.Time, notifyWithin time.Duration) (found bool, err error)
	// SchedulerGet returns the row id with its metadata.
	SchedulerGet(ctx context.Context, t SchedulerTable, id string) (p SchedulerPending, found bool, err error)
	// SchedulerList returns up to limit rows in due order (then id), only
	// those of topic unless topic is empty; Metadata is left nil.
	SchedulerList(ctx context.Context, t SchedulerTable, topic string, limit int) ([]SchedulerPending, error)
	// SchedulerCount counts the rows of topic (every topic when empty).
	SchedulerCount(ctx context.Context, t SchedulerTable, topic string) (int64, error)
	// SchedulerTakeLease takes or renews the lease name for holder for ttl,
	// on the database clock; it reports whether holder holds it. A lease
	// held by another holder is taken over only once it has expired.
	SchedulerTakeLease(ctx context.Context, t SchedulerTable, name, holder string, ttl time.Duration) (bool, error)
	// SchedulerReleaseLease frees the lease name if holder holds it.
	SchedulerReleaseLease(ctx context.Context, t SchedulerTable, name, holder string) error
	// SchedulerLeaseHolder returns the holder of the unexpired lease name,
	// or "".
	SchedulerLeaseHolder(ctx context.Context, t SchedulerTable, name string) (string, error)
	// SchedulerFireTick records the tick of job for holder, inside the
	// caller's transaction, and deletes the job's ticks before
	// pruneBefore; first is false when the tick was recorded already (by
	// another replica), and then nothing is written.
	SchedulerFireTick(ctx context.Context, t SchedulerTable, job string, tick time.Time, holder string, pruneBefore time.Time) (first bool, err error)
	// SchedulerListen calls wake each time rows of t are announced, with
	// the earliest announced due time (zero when unknown), until ctx ends;
	// it calls ready each time it is (again) listening. It logs on log
	// (lost and restored connections).
	SchedulerListen(ctx context.Context, t SchedulerTable, log *slog.Logger, ready func(), wake func(due time.Time)) error
	// SchedulerTableExists reports whether t's table of scheduled
	// messages exists (so a poller can refuse to run unmigrated).
	SchedulerTableExists(ctx context.Context, t SchedulerTable) (bool, error)
}

// Metadata keys of the scheduler's refusal bookkeeping, as
// [SchedulerExecutor.SchedulerPushBack] writes them (router.KeyScheduleRefusals
// and router.KeyScheduleLastError).
const (
	SchedulerRefusalsKey  = "hexeract_schedule_refusals"
	SchedulerLastErrorKey = "hexeract_schedule_last_error"
)

// SchedulerTable names the tables of one scheduler: Table (scheduled
// messages), Table_ticks (fired cron ticks) and Table_leases (the cron
// lease), in Schema (a PostgreSQL schema or a MySQL database; empty for the
// connection's default). The scheduler validates the names; drivers quote
// them.
type SchedulerTable struct {
	Schema  string
	Table   string
	Channel string // notification channel of the table
}

// Name returns "schema.table" or "table".
func (t SchedulerTable) Name() string {
	if t.Schema == "" {
		return t.Table
	}
	return t.Schema + "." + t.Table
}

// Component is the name under which the table's migrations are recorded.
func (t SchedulerTable) Component() string { return "scheduler:" + t.Name() }

// SchedulerRow is one message to store. Metadata is a JSON object of
// strings; Payload is never nil.
type SchedulerRow struct {
	ID, Topic, UUID string
	DueAt           time.Time
	Payload         []byte
	Metadata        []byte
}

// SchedulerClaimed is one claimed row.
type SchedulerClaimed struct {
	ID, Topic, UUID string
	DueAt           time.Time
	Payload         []byte
	Metadata        []byte
}

// SchedulerClaim is what one claim took, and when the next row left is
// due: NextDue on the database's timeline (zero when none is left) and
// NextIn from the database's now.
type SchedulerClaim struct {
	Rows    []SchedulerClaimed
	NextDue time.Time
	NextIn  time.Duration
}

// SchedulerPending is a stored row as the operations queries see it.
type SchedulerPending struct {
	ID, Topic string
	Type      string // the ce_type metadata ("" without it)
	DueAt     time.Time
	CreatedAt time.Time
	Refusals  int
	LastError string
	Metadata  []byte // JSON; nil from SchedulerList
}
