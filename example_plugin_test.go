package hexeract_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract"
)

// counterPlugin counts the messages the App's handlers take, with
// middleware, and reports the count when the App is closed, with a
// Component.
type counterPlugin struct{ handled atomic.Int64 }

func (*counterPlugin) Name() string { return "counter" }

func (p *counterPlugin) Install(app *hexeract.App) error {
	app.Use(func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			p.handled.Add(1)
			return h(msg)
		}
	})
	return app.Attach(p)
}

func (*counterPlugin) Start(context.Context) error { return nil }

func (p *counterPlugin) Close() error {
	fmt.Println("counter: handled", p.handled.Load())
	return nil
}

// ExampleApp_Install installs a plugin that brings middleware and a
// Component: the middleware sees the handler added before the plugin, and
// the Component reports when the App closes.
func ExampleApp_Install() {
	app, err := hexeract.New(hexeract.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		panic(err)
	}
	done := make(chan struct{})
	err = hexeract.HandleFunc(app, func(_ context.Context, ev AccountOpened) error {
		fmt.Println("opened", ev.UserID)
		close(done)
		return nil
	})
	if err != nil {
		panic(err)
	}
	if err := app.Install(&counterPlugin{}); err != nil {
		panic(err)
	}
	fmt.Println("plugins:", app.Plugins())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = app.Run(ctx) }()
	<-app.Running()
	if err := app.Publish(ctx, AccountOpened{UserID: "u-1"}); err != nil {
		panic(err)
	}
	<-done
	if err := app.Close(); err != nil {
		panic(err)
	}
	// Output:
	// plugins: [counter]
	// opened u-1
	// counter: handled 1
}
