package saga

import (
	"context"

	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/store"
)

// inboxTx returns the transaction of the inbox handler ctx runs in
// (outbox.TxHandler), in which a transition nests.
func inboxTx(ctx context.Context) (store.ExecutorTx, bool) {
	tx, ok := outbox.Tx(ctx)
	if !ok || tx == nil {
		return nil, false
	}
	return tx, true
}
