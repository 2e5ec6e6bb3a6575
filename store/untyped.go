package store

import (
	"context"
	"fmt"
)

// Untyped adapts a Store to a Driver whose transaction type is ExecutorTx
// itself. Code that holds only a Store (the CLI, an App configured with
// any driver) builds typed components on it: outbox.New(store.Untyped(st)).
func Untyped(st Store) Driver[ExecutorTx] {
	if d, ok := st.(Driver[ExecutorTx]); ok {
		return d
	}
	return untyped{st}
}

type untyped struct{ Store }

func (u untyped) UnwrapTx(tx ExecutorTx) ExecutorTx { return borrowed{tx} }

func (u untyped) TxOf(ex Executor) (ExecutorTx, bool) {
	switch t := ex.(type) {
	case borrowed:
		return t.ExecutorTx, true
	case ExecutorTx:
		return t, true
	}
	return nil, false
}

func (u untyped) InTx(ctx context.Context, fn func(ctx context.Context, tx ExecutorTx) error) error {
	return RunInTx(ctx, u.Store, fn)
}

// RunInTx runs fn in a new transaction of st and commits it when fn returns
// nil; it rolls back when fn returns an error or panics.
func RunInTx(ctx context.Context, st Store, fn func(ctx context.Context, tx ExecutorTx) error) (err error) {
	tx, err := st.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			panic(p)
		}
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if err = fn(ctx, tx); err != nil {
		return err
	}
	if err = tx.Commit(ctx); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// borrowed is an ExecutorTx whose transaction belongs to the caller.
type borrowed struct{ ExecutorTx }

func (borrowed) Commit(context.Context) error   { return ErrBorrowedTx }
func (borrowed) Rollback(context.Context) error { return ErrBorrowedTx }
