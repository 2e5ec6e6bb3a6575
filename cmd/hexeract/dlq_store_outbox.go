package main

import (
	"github.com/hexeract/hexeract/deadletter"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/store"
)

// storedRetryOutbox returns the outbox "dlq stored retry" writes to: the
// outbox table table of st, on any driver. This is the one place that
// knows the outbox's constructor.
func storedRetryOutbox(st store.Store, table string) (deadletter.Outbox, func(), error) {
	ob, err := outbox.New(store.Untyped(st), outbox.WithTable(table))
	if err != nil {
		return nil, nil, err
	}
	return ob, ob.Close, nil
}
