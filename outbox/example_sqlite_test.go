package outbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/hexeract/hexeract/outbox"
	"github.com/hexeract/hexeract/store/sqlite"
)

// ExampleNew_sqlite runs the outbox on embedded SQLite: no server. The
// caller's transaction is a *sql.Tx; a relay on the same store delivers
// the committed message to an in-memory GoChannel.
func ExampleNew_sqlite() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "outbox-example-")
	defer func() { _ = os.RemoveAll(dir) }()
	db, err := sqlite.Open(ctx, "sqlite://"+filepath.Join(dir, "app.db"))
	if err != nil {
		panic(err)
	}
	defer func() { _ = db.Close() }()

	ob, err := outbox.New(db) // an *outbox.Outbox[*sql.Tx]
	if err != nil {
		panic(err)
	}
	if err := ob.Migrate(ctx); err != nil {
		panic(err)
	}
	bus := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	received, _ := bus.Subscribe(ctx, "users.registered")
	relay, err := ob.NewRelay(bus)
	if err != nil {
		panic(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = relay.Run(runCtx) }()

	err = ob.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE users (id TEXT PRIMARY KEY)`); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO users (id) VALUES (?)`, "u-1"); err != nil {
			return err
		}
		_, err := ob.Publish(ctx, tx, UserRegistered{UserID: "u-1", Email: "ada@example.com"})
		return err
	})
	if err != nil {
		panic(err)
	}
	select {
	case msg := <-received:
		msg.Ack()
		fmt.Println("delivered:", string(msg.Payload))
	case <-time.After(10 * time.Second):
		fmt.Println("not delivered")
	}
	// Output:
	// delivered: {"user_id":"u-1","email":"ada@example.com"}
}
