package saga

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hexeract/hexeract"
)

// Purger returns an App worker ([hexeract.WithWorker]) that deletes, every
// interval, the instances of store that finished more than retention ago.
// Use it with [WithRetention]: retention keeps finished instances visible
// ("hexeract saga list --status completed") for that long. Purge errors are
// logged and retried at the next interval.
func Purger(store Store, retention, every time.Duration, logger *slog.Logger) (hexeract.Worker, error) {
	if store == nil {
		return nil, fmt.Errorf("saga: Purger needs a store")
	}
	if retention <= 0 || every <= 0 {
		return nil, fmt.Errorf("saga: Purger needs a positive retention and interval (got %s and %s)", retention, every)
	}
	if logger == nil {
		logger = slog.Default()
	}
	return hexeract.WorkerFunc(func(ctx context.Context) error {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			n, err := store.Purge(ctx, time.Now().Add(-retention))
			switch {
			case err != nil && ctx.Err() == nil:
				logger.Warn("saga: purge of finished instances failed", "error", err)
			case n > 0:
				logger.Debug("saga: purged finished instances", "count", n)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	}), nil
}
