package saga

import (
	"context"

	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/postgres"
)

// inboxTx returns the transaction the inbox middleware opened for the
// message being handled, as an executor.
//
// TODO(storage wave): outbox.Tx returns a pgx.Tx until the outbox moves
// to the storage seam; then this is just "return outbox.Tx(ctx)".
func inboxTx(ctx context.Context) (store.ExecutorTx, bool) {
	tx, ok := outbox.Tx(ctx)
	if !ok || tx == nil {
		return nil, false
	}
	return postgres.New(nil).UnwrapTx(tx), true
}
