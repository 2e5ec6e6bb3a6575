package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// lazyTx is the transaction of a saga transition ([executor.SagaBegin]):
// a pgx.Tx on one pooled connection whose BEGIN is sent with the first
// statement (SagaLoad sends it with the load, in one round trip) and whose
// saga saves are queued and sent with the COMMIT, so a transition that
// loads, writes to the outbox and saves takes three round trips, like a
// raw BEGIN; INSERT; COMMIT. Any other statement first sends what is
// queued, so statements run in the order they were issued.
//
// LargeObjects is not available on it.
type lazyTx struct {
	conn    *pgxpool.Conn
	begun   bool
	pending []*pgx.QueuedQuery
	done    bool
	sp      int // savepoints made
}

var _ pgx.Tx = (*lazyTx)(nil)

var errTxDone = errors.New("postgres: the saga transaction is finished")

// send sends, in one batch, BEGIN when the transaction has not begun, the
// queued statements and then extra, and returns the results of extra.
func (t *lazyTx) send(ctx context.Context, extra ...*pgx.QueuedQuery) (pgx.BatchResults, error) {
	if t.done {
		return nil, errTxDone
	}
	b := &pgx.Batch{}
	skip := 0
	if !t.begun {
		b.Queue("BEGIN")
		skip++
	}
	b.QueuedQueries = append(b.QueuedQueries, t.pending...)
	skip += len(t.pending)
	t.pending = nil
	b.QueuedQueries = append(b.QueuedQueries, extra...)
	if b.Len() == 0 {
		return nil, nil
	}
	br := t.conn.SendBatch(ctx, b)
	for i := range skip {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return nil, sagaErr(err)
		}
		if i == 0 {
			t.begun = true
		}
	}
	return br, nil
}

// flush sends what is queued (and BEGIN) before a statement of its own.
func (t *lazyTx) flush(ctx context.Context) error {
	if t.begun && len(t.pending) == 0 && !t.done {
		return nil
	}
	br, err := t.send(ctx)
	if err != nil || br == nil {
		return err
	}
	return br.Close()
}

// queue defers a statement to the next batch (the COMMIT at the latest).
func (t *lazyTx) queue(sql string, args ...any) {
	t.pending = append(t.pending, &pgx.QueuedQuery{SQL: sql, Arguments: args})
}

// queryRowFirst runs sql as the first statement, with BEGIN in the same
// round trip.
func (t *lazyTx) queryRowFirst(ctx context.Context, sql string, args []any, dest ...any) error {
	br, err := t.send(ctx, &pgx.QueuedQuery{SQL: sql, Arguments: args})
	if err != nil {
		return err
	}
	err = br.QueryRow().Scan(dest...)
	if cerr := br.Close(); cerr != nil && (err == nil || errors.Is(err, pgx.ErrNoRows)) {
		err = cerr
	}
	return err
}

func (t *lazyTx) Begin(ctx context.Context) (pgx.Tx, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	t.sp++
	name := fmt.Sprintf("hexeract_sp_%d", t.sp)
	if _, err := t.conn.Exec(ctx, "SAVEPOINT "+name); err != nil {
		return nil, err
	}
	return &lazySavepoint{lazyTx: t, name: name}, nil
}

// Commit sends the queued saves and COMMIT in one round trip. A save that
// conflicts aborts the transaction, so nothing of it commits.
func (t *lazyTx) Commit(ctx context.Context) error {
	if t.done {
		return pgx.ErrTxClosed
	}
	if !t.begun && len(t.pending) == 0 {
		t.release()
		return nil
	}
	br, err := t.send(ctx, &pgx.QueuedQuery{SQL: "COMMIT"})
	if err == nil {
		_, err = br.Exec()
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil && t.conn.Conn().PgConn().TxStatus() != 'I' {
		err = errors.New("postgres: COMMIT did not end the transaction")
	}
	if err != nil {
		t.rollback(ctx)
		t.release()
		return sagaErr(err)
	}
	t.release()
	return nil
}

func (t *lazyTx) Rollback(ctx context.Context) error {
	if t.done {
		return pgx.ErrTxClosed
	}
	t.rollback(ctx)
	t.release()
	return nil
}

// rollback ends an open transaction. When that fails (a broken
// connection), the pool destroys the connection on release because it is
// not idle.
func (t *lazyTx) rollback(ctx context.Context) {
	t.pending = nil
	if t.begun && t.conn.Conn().PgConn().TxStatus() != 'I' {
		_, _ = t.conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
	}
}

func (t *lazyTx) release() {
	if !t.done {
		t.done = true
		t.conn.Release()
	}
}

func (t *lazyTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	if err := t.flush(ctx); err != nil {
		return 0, err
	}
	return t.conn.CopyFrom(ctx, table, columns, src)
}

func (t *lazyTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if err := t.flush(ctx); err != nil {
		return errBatch{err}
	}
	return t.conn.SendBatch(ctx, b)
}

func (t *lazyTx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }

func (t *lazyTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	if t.done {
		return nil, errTxDone
	}
	return t.conn.Conn().Prepare(ctx, name, sql)
}

func (t *lazyTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := t.flush(ctx); err != nil {
		return pgconn.CommandTag{}, err
	}
	return t.conn.Exec(ctx, sql, args...)
}

func (t *lazyTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return t.conn.Query(ctx, sql, args...)
}

func (t *lazyTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := t.flush(ctx); err != nil {
		return errRow{err}
	}
	return t.conn.QueryRow(ctx, sql, args...)
}

func (t *lazyTx) Conn() *pgx.Conn { return t.conn.Conn() }

// lazySavepoint is a savepoint of a lazyTx (its Begin).
type lazySavepoint struct {
	*lazyTx
	name   string
	closed bool
}

func (s *lazySavepoint) Commit(ctx context.Context) error {
	if s.closed {
		return pgx.ErrTxClosed
	}
	s.closed = true
	_, err := s.Exec(ctx, "RELEASE SAVEPOINT "+s.name)
	return err
}

func (s *lazySavepoint) Rollback(ctx context.Context) error {
	if s.closed {
		return pgx.ErrTxClosed
	}
	s.closed = true
	_, err := s.Exec(ctx, "ROLLBACK TO SAVEPOINT "+s.name+"; RELEASE SAVEPOINT "+s.name)
	return err
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

type errBatch struct{ err error }

func (b errBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, b.err }
func (b errBatch) Query() (pgx.Rows, error)         { return nil, b.err }
func (b errBatch) QueryRow() pgx.Row                { return errRow(b) }
func (b errBatch) Close() error                     { return b.err }
func (b errBatch) Tx() pgx.Tx                       { return nil }
