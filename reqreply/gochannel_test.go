package reqreply_test

import (
	"context"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters/gochannel"
	"github.com/hexeract/hexeract/reqreply"
)

// connection is one process's view of a shared in-memory broker: closing it
// (as Watermill's router does with its subscribers on shutdown) ends its own
// subscriptions and leaves the broker running for the other Apps.
type connection struct {
	*gochannel.PubSub
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
}

func newConnection(ps *gochannel.PubSub) *connection {
	ctx, cancel := context.WithCancel(context.Background())
	return &connection{PubSub: ps, ctx: ctx, cancel: cancel}
}

func (c *connection) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-c.ctx.Done():
		case <-ctx.Done():
		}
		cancel()
	}()
	return c.PubSub.Subscribe(ctx, topic)
}

func (c *connection) Close() error {
	c.once.Do(c.cancel)
	return nil
}

func goChannelTransport(t *testing.T) transport {
	ps := gochannel.New(gochannel.Config{Buffer: 1024}, nil)
	t.Cleanup(func() { _ = ps.Close() })
	newApp := func(t *testing.T) *hexeract.App {
		conn := newConnection(ps)
		app, err := hexeract.New(hexeract.WithPubSub(conn, conn), hexeract.WithLogger(quietLogger()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = app.Close(); _ = conn.Close() })
		return app
	}
	return transport{
		name:         "gochannel",
		newResponder: func(t *testing.T) (*hexeract.App, []reqreply.HandlerOption) { return newApp(t), nil },
		newCaller:    func(t *testing.T) (*hexeract.App, []reqreply.ClientOption) { return newApp(t), nil },
	}
}

func TestGoChannel(t *testing.T) { runSuite(t, goChannelTransport) }
