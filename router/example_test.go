package router_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/router"
)

// OrderPlaced is a message type: a struct with a stable wire name.
type OrderPlaced struct {
	OrderID string `json:"order_id"`
	Total   int    `json:"total_cents"`
}

// MessageType is the wire name, the CloudEvents type.
func (OrderPlaced) MessageType() string { return "orders.placed" }

// ExampleNewMessage encodes a typed message into a Watermill message with
// the envelope, and reads the envelope back.
func ExampleNewMessage() {
	ctx := router.WithCorrelationID(context.Background(), "req-42")
	msg, err := router.NewMessage(ctx, OrderPlaced{OrderID: "o-1", Total: 1250}, router.EncodeOptions{Source: "shop"})
	if err != nil {
		panic(err)
	}
	env := router.EnvelopeOf(msg)
	fmt.Println(env.Type, env.Source, env.SpecVersion, env.ContentType)
	fmt.Println("correlation:", env.CorrelationID)
	fmt.Println("payload:", string(msg.Payload))
	// Output:
	// orders.placed shop 1.0 application/json
	// correlation: req-42
	// payload: {"order_id":"o-1","total_cents":1250}
}

// ExampleDecode decodes a received message into its Go type; a message of
// another type gives a permanent *DecodeError that names it.
func ExampleDecode() {
	msg, _ := router.NewMessage(context.Background(), OrderPlaced{OrderID: "o-1", Total: 1250}, router.EncodeOptions{ID: "0193-example"})
	order, err := router.Decode[OrderPlaced](msg, router.JSON{}, "orders.placed")
	fmt.Println(order.OrderID, order.Total, err)

	_, err = router.Decode[OrderPlaced](msg, router.JSON{}, "orders.shipped")
	var de *router.DecodeError
	fmt.Println(errors.As(err, &de), router.IsPermanent(err))
	fmt.Println(err)
	// Output:
	// o-1 1250 <nil>
	// true true
	// hexeract: cannot decode message 0193-example from (unknown topic) as "orders.shipped": unexpected message type "orders.placed" (this handler takes "orders.shipped")
}

// ExampleNewHandlerFunc runs a typed handler as a plain Watermill handler
// function, for applications that keep their own message.Router.
func ExampleNewHandlerFunc() {
	h, err := router.NewHandlerFunc(router.HandlerFunc[OrderPlaced](func(ctx context.Context, o OrderPlaced) error {
		env, _ := router.EnvelopeFrom(ctx)
		fmt.Println("handled", o.OrderID, "of type", env.Type)
		return nil
	}), nil)
	if err != nil {
		panic(err)
	}
	msg, _ := router.NewMessage(context.Background(), OrderPlaced{OrderID: "o-7"}, router.EncodeOptions{})
	// On a router: r.AddConsumerHandler("orders", "orders.placed", sub, h)
	var _ message.NoPublishHandlerFunc = h //nolint:staticcheck // the type is the point: h is a Watermill NoPublishHandlerFunc
	fmt.Println(h(msg))
	// Output:
	// handled o-7 of type orders.placed
	// <nil>
}

// ExampleRegistry maps wire names to Go types, for code that receives
// messages of several types on one topic.
func ExampleRegistry() {
	reg := router.NewRegistry()
	name, err := router.Register[OrderPlaced](reg)
	fmt.Println(name, err)
	m, err := reg.DecodeAny(router.JSON{}, "orders.placed", []byte(`{"order_id":"o-9","total_cents":5}`))
	fmt.Printf("%T %+v %v\n", m, m, err)
	_, err = reg.DecodeAny(router.JSON{}, "orders.unknown", []byte(`{}`))
	fmt.Println(err != nil)
	// Output:
	// orders.placed <nil>
	// router_test.OrderPlaced {OrderID:o-9 Total:5} <nil>
	// true
}
