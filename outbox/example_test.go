package outbox_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hexeract/hexeract/adapters/gochannel"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/router"
	"github.com/hexeract/hexeract/store/postgres"
)

func examplePool() *pgxpool.Pool {
	url := os.Getenv("HEXERACT_TEST_POSTGRES")
	if url == "" {
		url = testenv.DefaultPostgres
	}
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		panic(err)
	}
	return pool
}

// Publish an event in the transaction that changes the business state, and
// let a relay deliver it to a Watermill publisher.
func ExampleOutbox_Publish() {
	ctx := context.Background()
	pool := examplePool()
	defer pool.Close()
	table := "example_outbox_" + testenv.Suffix()
	defer dropOutbox(pool, table)

	ob, err := outbox.New(postgres.New(pool), outbox.WithTable(table))
	if err != nil {
		panic(err)
	}
	defer ob.Close()
	if err := ob.Migrate(ctx); err != nil {
		panic(err)
	}

	// Business state and event commit together; InTx signals the relays.
	err = ob.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		// tx.Exec(ctx, `INSERT INTO users ...`) would go here.
		_, err := ob.Publish(ctx, tx, UserRegistered{UserID: "u-1", Email: "ada@example.com"})
		return err
	})
	if err != nil {
		panic(err)
	}

	bus := gochannel.New(gochannel.Config{Buffer: 16}, nil)
	defer bus.Close()
	received, err := bus.Subscribe(ctx, "users.registered")
	if err != nil {
		panic(err)
	}
	relay, err := outbox.NewRelay(postgres.New(pool), bus, outbox.WithTable(table))
	if err != nil {
		panic(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- relay.Run(runCtx) }()

	select {
	case msg := <-received:
		msg.Ack()
		fmt.Println(msg.Metadata.Get(router.KeyType), string(msg.Payload))
	case <-time.After(10 * time.Second):
		fmt.Println("not delivered")
	}
	stop()
	<-done
	// Output: users.registered {"user_id":"u-1","email":"ada@example.com"}
}

// The inbox middleware runs the handler and the inbox record in one
// transaction: a redelivered message has its effect once.
func ExampleInbox_Middleware() {
	ctx := context.Background()
	pool := examplePool()
	defer pool.Close()
	table := "example_inbox_" + testenv.Suffix()
	defer func() {
		_, _ = pool.Exec(ctx, `DROP TABLE `+table)
		_, _ = pool.Exec(ctx, `DELETE FROM hexeract_schema_migrations WHERE component = $1`, "inbox:"+table)
	}()

	inbox, err := outbox.NewInbox(postgres.New(pool), outbox.WithInboxTable(table))
	if err != nil {
		panic(err)
	}
	if err := inbox.Migrate(ctx); err != nil {
		panic(err)
	}
	handler := inbox.Middleware("mailer")(func(msg *message.Message) ([]*message.Message, error) {
		tx, _ := inbox.Tx(msg.Context()) // write business rows with tx (a pgx.Tx)
		_ = tx
		fmt.Println("sending welcome email for", msg.UUID)
		return nil, nil
	})
	msg := message.NewMessage("0193b8d2-0000-7000-8000-000000000001", []byte(`{}`))
	for range 3 { // delivered three times, handled once
		if _, err := handler(msg.Copy()); err != nil {
			panic(err)
		}
	}
	// Output: sending welcome email for 0193b8d2-0000-7000-8000-000000000001
}
