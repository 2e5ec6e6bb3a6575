package saga_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/saga"
	"github.com/hexeract/hexeract/store/postgres"
)

// TestSagaAndProjectionOnOneEventRabbitMQ is the case of issue 15: a saga
// and a projection both consume OrderPlaced, which is written through the
// outbox and relayed to RabbitMQ, in two replicas of one App (one consumer
// group). Every order must start its saga instance and reach the
// projection, each once: before the one-bus rule the saga and the projection
// competed for one queue and each saw about half of the orders.
func TestSagaAndProjectionOnOneEventRabbitMQ(t *testing.T) {
	const orders = 300
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pool := testenv.Postgres(t)
	sfx := testenv.Suffix()
	amqpURL := testenv.AMQPGroupURL(t, "saga-onebus")
	storeTable, obTable, projTable := "onebus_saga_"+sfx, "onebus_ob_"+sfx, "onebus_proj_"+sfx
	topic := func(name string) string { return name + "_" + sfx }
	t.Cleanup(func() {
		c := context.Background()
		_, _ = pool.Exec(c, fmt.Sprintf(`DROP TABLE IF EXISTS %s, %s_history, %s, %s_dead, %s_delivered, %s`, storeTable, storeTable, obTable, obTable, obTable, projTable))
		_, _ = pool.Exec(c, `DROP FUNCTION IF EXISTS `+storeTable+`_save`)
		_, _ = pool.Exec(c, `DELETE FROM hexeract_schema_migrations WHERE component LIKE '%'||$1`, sfx)
		if err := testenv.DeleteAMQPExchanges(testenv.DefaultAMQP, "_"+sfx); err != nil {
			t.Errorf("remove the exchanges: %v", err)
		}
	})
	store, err := saga.NewSQLStore(postgres.New(pool), saga.WithTable(storeTable))
	must(t, err)
	must(t, store.Migrate(ctx))
	ob, err := outbox.New(postgres.New(pool), outbox.WithTable(obTable), outbox.WithTopicFunc(topic))
	must(t, err)
	must(t, ob.Migrate(ctx))
	if _, err := pool.Exec(ctx, `CREATE TABLE `+projTable+` (order_id text PRIMARY KEY, amount int NOT NULL, calls int NOT NULL)`); err != nil {
		t.Fatal(err)
	}

	def := saga.Define[Order]("orders")
	saga.StartedBy(def, func(e OrderPlaced) string { return e.OrderID },
		func(c *saga.Context[Order], o *Order, e OrderPlaced) error {
			o.OrderID, o.Amount = e.OrderID, e.Amount
			c.Complete() // kept (retention) so the test can count the instances
			return nil
		})
	for range 2 { // two replicas of one App: one group, a connection and a relay each
		tr, err := adapters.Open(ctx, amqpURL)
		must(t, err)
		t.Cleanup(func() { _ = tr.Close() })
		relay, err := outbox.NewRelay(postgres.New(pool), tr.Publisher, outbox.WithTable(obTable), outbox.WithLogger(quietLogger()))
		must(t, err)
		app, err := hexeract.New(hexeract.WithPubSub(tr.Publisher, tr.Subscriber), hexeract.WithTopicFunc(topic),
			hexeract.WithLogger(quietLogger()), hexeract.WithWorker(relay))
		must(t, err)
		must(t, saga.Register(app, def, store, saga.WithOutbox(ob), saga.WithRetention(time.Hour), saga.WithLogger(quietLogger())))
		must(t, hexeract.HandleFunc(app, func(ctx context.Context, e OrderPlaced) error {
			_, err := pool.Exec(ctx, `INSERT INTO `+projTable+` (order_id, amount, calls) VALUES ($1, $2, 1)
				ON CONFLICT (order_id) DO UPDATE SET calls = `+projTable+`.calls + 1`, e.OrderID, e.Amount)
			return err
		}, hexeract.WithName("projection")))
		testenv.StartApp(t, app)
	}

	for i := 0; i < orders; i += 50 {
		err := ob.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
			for j := i; j < i+50; j++ {
				if _, err := ob.Publish(ctx, tx, OrderPlaced{OrderID: fmt.Sprint("o-", j), Amount: j}); err != nil {
					return err
				}
			}
			return nil
		})
		must(t, err)
	}
	count := func(sql string) int {
		var n int
		if err := pool.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		inSaga, inProj := count(`SELECT count(*) FROM `+storeTable), count(`SELECT count(*) FROM `+projTable)
		if inSaga == orders && inProj == orders {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 2 min, %d of %d orders reached the saga and %d the projection", inSaga, orders, inProj)
		}
	}
	time.Sleep(300 * time.Millisecond) // late duplicates would show by now
	if n := count(`SELECT count(*) FROM ` + storeTable + ` WHERE status = 'completed'`); n != orders {
		t.Errorf("%d of %d saga instances completed", n, orders)
	}
	if n := count(`SELECT coalesce(sum(calls), 0) FROM ` + projTable); n != orders {
		t.Errorf("the projection handled %d messages for %d orders", n, orders)
	}
	if st, err := ob.Stats(ctx); err != nil || st.Pending != 0 || st.Dead != 0 {
		t.Errorf("outbox after the run: %+v (%v)", st, err)
	}
}
