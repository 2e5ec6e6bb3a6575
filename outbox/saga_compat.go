package outbox

import (
	"context"
	"errors"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/postgres"
)

// PublishMessagesWith is PublishMessages inside ex, a transaction of the
// PostgreSQL driver (store/postgres), for the saga runtime.
//
// Deprecated: a bridge of the saga branch until the outbox moves to the
// storage seam (issue 17), which brings the real method; delete this file
// then.
func (o *Outbox) PublishMessagesWith(ctx context.Context, ex store.Executor, topic string, msgs ...*message.Message) error {
	tx, ok := postgres.New(nil).TxOf(ex)
	if !ok {
		return errors.New("outbox: PublishMessagesWith needs a transaction of the PostgreSQL driver")
	}
	return o.PublishMessages(ctx, tx, topic, msgs...)
}
