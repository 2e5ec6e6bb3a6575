package adapters_test

import (
	"context"
	"fmt"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters"
)

type greeted struct {
	Name string `json:"name"`
}

func (greeted) MessageType() string { return "example.greeted" }

// Open a transport from a URL (here the in-memory one; in production the
// URL comes from configuration, e.g. HEXERACT_TRANSPORT) and run an App on it.
func ExampleOpen() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	t, err := adapters.Open(ctx, "mem://", adapters.WithGroup("greeter"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer t.Close()

	app, err := hexeract.New(hexeract.WithPubSub(t.Publisher, t.Subscriber))
	if err != nil {
		fmt.Println(err)
		return
	}
	done := make(chan struct{})
	_ = hexeract.HandleFunc(app, func(ctx context.Context, m greeted) error {
		fmt.Println("hello,", m.Name)
		close(done)
		return nil
	})
	go func() { _ = app.Run(ctx) }()
	<-app.Running()
	_ = app.Publish(ctx, greeted{Name: "Ada"})
	<-done
	fmt.Println("transport:", t.Scheme)
	// Output:
	// hello, Ada
	// transport: mem
}

// Unknown schemes are errors that list the supported ones; the password of
// the URL never appears in an error.
func ExampleOpen_unknownScheme() {
	_, err := adapters.Open(context.Background(), "rabbitmq://guest:secret@localhost/")
	fmt.Println(err)
	// Output:
	// hexeract: unknown transport scheme "rabbitmq" (supported: amqp://, amqps://, kafka://, mem://, nats://, postgres://, postgresql://, redis://, rediss://, sqs://)
}
