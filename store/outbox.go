package store

import (
	"context"
	"time"
)

// OutboxExecutor is the part of [Executor] the outbox component uses:
// writing messages in the caller's transaction, the relay's claim and
// settlement, and the operations queries (stats, dead rows, retention).
// Every driver implements it in its own outbox.go.
type OutboxExecutor interface {
	// OutboxMigrations returns the driver's migrations of the outbox
	// tables named by t, applied with [Store.Migrate] under t.Component().
	OutboxMigrations(t OutboxTable) ([]Migration, error)
	// OutboxInsert writes the batch's rows, in order, through this
	// executor (the caller's transaction). With opts.KeyLock it first
	// serialises, until the transaction ends, the writers of each ordering
	// key of the batch, so rows of one key commit in sequence order.
	OutboxInsert(ctx context.Context, t OutboxTable, b *OutboxBatch, opts OutboxWriteOptions) error
	// OutboxNotify wakes relays of t outside any producer transaction: a
	// notification that crosses processes where the database has one
	// (PostgreSQL), the driver's in-process notifier otherwise.
	OutboxNotify(ctx context.Context, t OutboxTable) error
	// OutboxOpenRelay returns the connections of one relay on t.
	OutboxOpenRelay(ctx context.Context, cfg OutboxRelayConfig) (OutboxRelayPool, error)
	// OutboxStats counts the rows of t's tables.
	OutboxStats(ctx context.Context, t OutboxTable) (OutboxStats, error)
	// OutboxDeadList lists up to limit dead rows after sequence afterSeq.
	OutboxDeadList(ctx context.Context, t OutboxTable, afterSeq int64, limit int) ([]OutboxDeadRow, error)
	// OutboxDeadMove removes up to limit dead rows (those with the given
	// ids, or any when ids is empty), oldest first, in one transaction;
	// with replay it writes them back into the outbox with new sequence
	// numbers (in the order of the old ones), attempts reset and created
	// now, and with notify it wakes the relays of other processes where
	// the driver can. It returns the number of rows removed.
	OutboxDeadMove(ctx context.Context, t OutboxTable, ids []string, limit int, replay, notify bool) (int64, error)
	// OutboxCleanupDelivered deletes up to limit rows of the delivered
	// table older than olderThan and returns how many it deleted.
	OutboxCleanupDelivered(ctx context.Context, t OutboxTable, olderThan time.Duration, limit int) (int64, error)
}

// OutboxTable names the tables of one outbox: Table (pending rows),
// Table_dead and Table_delivered, in Schema (a PostgreSQL schema or a
// MySQL database; empty for the connection's default). The outbox
// component validates the names; drivers quote them.
type OutboxTable struct {
	Schema    string
	Table     string
	Channel   string // notification channel of the table
	LockClass int32  // first half of the PostgreSQL advisory lock per ordering key
}

// Name returns "schema.table" or "table".
func (t OutboxTable) Name() string {
	if t.Schema == "" {
		return t.Table
	}
	return t.Schema + "." + t.Table
}

// Component is the name under which the table's migrations are recorded.
func (t OutboxTable) Component() string { return "outbox:" + t.Name() }

// OutboxBatch holds the column values of the rows one publish writes, in
// order. Keys[i] is "" for a row without an ordering key; Metadata[i] is
// a JSON object of strings.
type OutboxBatch struct {
	IDs, Topics, Keys, Metadata []string
	Payloads                    [][]byte
	// Keyed reports whether a row has an ordering key.
	Keyed bool
}

// Len returns the number of rows.
func (b *OutboxBatch) Len() int { return len(b.IDs) }

// OutboxWriteOptions says how [OutboxExecutor.OutboxInsert] writes.
type OutboxWriteOptions struct {
	// KeyLock serialises the writers of each ordering key of the batch
	// until their transactions end (PostgreSQL advisory transaction locks,
	// a key-lock row on MySQL; SQLite has one writer anyway).
	KeyLock bool
	// NotifyInTx sends the cross-process notification inside the writing
	// transaction (PostgreSQL pg_notify, delivered at commit). Drivers
	// without one ignore it.
	NotifyInTx bool
}

// OutboxRow is one claimed outbox row.
type OutboxRow struct {
	Seq       int64
	ID        string
	Topic     string
	Key       string // "" when the row has no ordering key
	Metadata  string // JSON object
	Payload   []byte
	Attempts  int32
	LastError string
	CreatedAt time.Time
}

// OutboxRelayConfig configures the connections of a relay.
type OutboxRelayConfig struct {
	Table   OutboxTable
	Workers int // connections that claim concurrently
	// Lease is how long a claimed batch stays the relay's: PostgreSQL ends
	// a session idle in its claiming transaction for longer; MySQL and
	// SQLite let other relays claim the rows once it expired.
	Lease time.Duration
	// SyncCommit makes the relay's commits wait for durability (PostgreSQL
	// runs relay sessions with synchronous_commit off otherwise).
	SyncCommit bool
	// Retention copies delivered rows into the delivered table.
	Retention bool
}

// OutboxRelayPool holds a relay's connections.
type OutboxRelayPool interface {
	// Acquire returns one connection for a worker's claims.
	Acquire(ctx context.Context) (OutboxRelayConn, error)
	// Close releases the pool's connections.
	Close()
}

// OutboxRelayConn is one relay worker's session. Rows are claimed with
// Claim, published, and settled with Settle. On PostgreSQL the claim
// deletes the rows in a transaction that stays open while the broker is
// called and is committed in the round trip of the next Claim (or by
// Commit); MySQL and SQLite claim with a lease in a short transaction and
// settle in another.
type OutboxRelayConn interface {
	// Claim claims up to limit rows in sequence order (rows of one ordering
	// key never while an earlier row of the key is claimed, waiting for a
	// retry or not yet committed), appending them to buf. When the
	// previous Settle left its transaction open, Claim commits it first
	// and returns the commit's outcome as prev (err is then the claim's).
	Claim(ctx context.Context, limit int, buf []OutboxRow) (rows []OutboxRow, prev, err error)
	// Settle records a claimed batch's outcome. It reports committed=false
	// when the settlement waits in the open transaction for the next Claim
	// or Commit.
	Settle(ctx context.Context, s *OutboxSettlement) (committed bool, err error)
	// Commit commits what Settle left open (nothing when nothing is).
	Commit(ctx context.Context) error
	// Release rolls back whatever is open and gives the connection back.
	Release()
}

// OutboxSettlement is the outcome of one claimed batch.
type OutboxSettlement struct {
	Claimed   []OutboxRow   // the batch as claimed
	Delivered []int64       // seqs of the rows the broker acknowledged
	Retry     []OutboxRetry // rows going back to the outbox
	Dead      []OutboxRow   // rows moving to the dead table (Attempts and LastError set)
}

// OutboxRetry is a claimed row that goes back into the outbox: Row with its
// new Attempts and LastError (unchanged for a row put back untried), due
// Delay after the settlement.
type OutboxRetry struct {
	Row   OutboxRow
	Delay time.Duration
}

// OutboxStats describes the state of an outbox table.
type OutboxStats struct {
	Pending          int64
	Retrying         int64
	OldestPendingAge time.Duration
	Dead             int64
	Delivered        int64
}

// OutboxDeadRow is a row of the dead table.
type OutboxDeadRow struct {
	Seq         int64
	ID          string
	Topic       string
	OrderingKey string
	Metadata    string // JSON object
	Payload     []byte
	Attempts    int
	LastError   string
	CreatedAt   time.Time
	DeadAt      time.Time
}
