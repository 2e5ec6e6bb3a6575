package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/deadletter"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/postgres"
)

// storedRetryOutbox returns the outbox "dlq stored retry" writes to: the
// outbox table table of st.
//
// This is the one place that knows the outbox's constructor. Until the
// outbox runs on the storage seam (outbox.New(store.Untyped(st), ...) with
// PublishMessagesWith), it reaches PostgreSQL's pgx transaction through the
// driver; on MySQL and SQLite a retry is refused with an error saying so.
func storedRetryOutbox(st store.Store, table string) (deadletter.Outbox, func(), error) {
	pg, ok := st.(*postgres.Driver)
	if !ok {
		return nil, nil, fmt.Errorf("dlq stored retry on %s needs the outbox on the storage seam, not in this build: retry on PostgreSQL, or delete and republish", st.Dialect())
	}
	ob, err := outbox.New(pg.Pool(), outbox.WithTable(table))
	if err != nil {
		return nil, nil, err
	}
	return pgRetryOutbox{d: pg, ob: ob}, ob.Close, nil
}

type pgRetryOutbox struct {
	d  *postgres.Driver
	ob *outbox.Outbox
}

func (p pgRetryOutbox) PublishMessagesWith(ctx context.Context, ex store.Executor, topic string, msgs ...*message.Message) error {
	tx, ok := p.d.TxOf(ex)
	if !ok {
		return errors.New("dlq stored retry: not a transaction of the PostgreSQL driver")
	}
	return p.ob.PublishMessages(ctx, tx, topic, msgs...)
}

// Signal wakes the outbox's relays in this process (none in the CLI; kept
// so the retry signals as it does in an App).
func (p pgRetryOutbox) Signal() { p.ob.Signal() }
