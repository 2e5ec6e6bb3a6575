package deadletter_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/deadletter"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/sqlite"
)

// printOutbox stands in for *outbox.Outbox[TTx]: a real outbox writes the
// message into its table in the transaction ex.
type printOutbox struct{}

func (printOutbox) PublishMessagesWith(_ context.Context, _ store.Executor, topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		fmt.Printf("outbox: %s to %s\n", m.UUID, topic)
	}
	return nil
}

// Example stores a dead letter (as the DeadLetter middleware does with
// DeadLetterOptions.Store), groups the failures, and retries a group: first
// as a dry run, then for real, with its audit line.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "deadletter")
	defer func() { _ = os.RemoveAll(dir) }()
	drv, err := sqlite.Open(ctx, "sqlite://"+filepath.Join(dir, "app.db"))
	if err != nil {
		panic(err)
	}
	defer func() { _ = drv.Close() }()
	dls, err := deadletter.New(drv, deadletter.WithOutbox(printOutbox{}))
	if err != nil {
		panic(err)
	}
	if err := dls.Migrate(ctx); err != nil {
		panic(err)
	}
	for _, id := range []string{"order-1", "order-2"} {
		err := dls.Write(ctx, middleware.DeadLetterRecord{
			Message: message.NewMessage(id, []byte(`{"sku":"?"}`)),
			Fault:   middleware.Fault{Error: "unknown sku", Type: "*errors.errorString", Handler: "reserve-stock", Topic: "orders", Attempts: 3, LastFailure: time.Now()},
		})
		if err != nil {
			panic(err)
		}
	}
	groups, _ := dls.Groups(ctx, deadletter.Filter{})
	for _, g := range groups {
		fmt.Printf("%d x %s: %s\n", g.Count, g.String(), g.Example)
	}
	sel := deadletter.Selection{Group: &groups[0].GroupKey}
	plan, _ := dls.Retry(ctx, sel, deadletter.MutateOptions{Operator: "ann", DryRun: true})
	fmt.Println(plan.Line("ann", sel))
	res, err := dls.Retry(ctx, sel, deadletter.MutateOptions{Operator: "ann"})
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Line("ann", sel))
	// Output:
	// 2 x *errors.errorString@reserve-stock: unknown sku
	// dry run: ann would retry 2 dead letter(s) selected by {"group":{"fault_type":"*errors.errorString","handler":"reserve-stock"}}; nothing changed
	// outbox: order-1 to orders
	// outbox: order-2 to orders
	// audit #1: ann retried 2 of 2 dead letter(s) selected by {"group":{"fault_type":"*errors.errorString","handler":"reserve-stock"}} (done)
}
