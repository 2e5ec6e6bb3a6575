package scheduler

import (
	"context"
	"errors"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/postgres"
)

// ScheduleMessagesWith is ScheduleMessages inside ex, a transaction of
// the PostgreSQL driver (store/postgres), for the saga runtime.
//
// Deprecated: a bridge of the saga branch until the scheduler moves to
// the storage seam (issue 17), which brings the real method; delete this
// file then.
func (s *Scheduler) ScheduleMessagesWith(ctx context.Context, ex store.Executor, at time.Time, topic string, msgs ...*message.Message) ([]string, error) {
	tx, ok := postgres.New(nil).TxOf(ex)
	if !ok {
		return nil, errors.New("scheduler: ScheduleMessagesWith needs a transaction of the PostgreSQL driver")
	}
	return s.ScheduleMessages(ctx, tx, at, topic, msgs...)
}

// CancelWith is CancelTx inside ex, a transaction of the PostgreSQL
// driver.
//
// Deprecated: a bridge of the saga branch; see ScheduleMessagesWith.
func (s *Scheduler) CancelWith(ctx context.Context, ex store.Executor, id string) error {
	tx, ok := postgres.New(nil).TxOf(ex)
	if !ok {
		return errors.New("scheduler: CancelWith needs a transaction of the PostgreSQL driver")
	}
	return s.CancelTx(ctx, tx, id)
}
