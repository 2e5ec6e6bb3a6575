package router_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/adapters/gochannel"
	"github.com/hexeract/hexeract/router"
)

// ExampleExpandStructured reads a CloudEvent in structured mode (the whole
// event as the JSON body, as Dapr, Knative or a CloudEvents SDK's
// structured binding write it) as a binary-mode Hexeract message.
func ExampleExpandStructured() {
	msg := message.NewMessage("", []byte(`{
		"specversion": "1.0", "id": "evt-42", "source": "/checkout", "type": "orders.placed",
		"correlationid": "conv-7", "datacontenttype": "application/json",
		"data": {"order_id": "o-1", "total_cents": 1250}
	}`))
	msg.Metadata.Set("content-type", "application/cloudevents+json; charset=utf-8")

	msgs, err := router.ExpandStructured(msg)
	if err != nil {
		panic(err)
	}
	env := router.EnvelopeOf(msgs[0])
	fmt.Println(env.ID, env.Type, env.Source, env.CorrelationID, env.ContentType)
	fmt.Println(string(msgs[0].Payload))

	// A typed handler reads it directly too: Decode expands a single event.
	order, err := router.Decode[OrderPlaced](msg, router.JSON{}, "orders.placed")
	fmt.Println(order.OrderID, order.Total, err)

	// An invalid event is a permanent error that says what is wrong.
	bad := message.NewMessage("", []byte(`{"specversion":"1.0","id":"evt-43","source":"/checkout"}`))
	bad.Metadata.Set("content-type", "application/cloudevents+json")
	_, err = router.ExpandStructured(bad)
	var serr *router.StructuredError
	fmt.Println(errors.As(err, &serr), serr.EventID, router.IsPermanent(err))
	fmt.Println(err)
	// Output:
	// evt-42 orders.placed /checkout conv-7 application/json
	// {"order_id": "o-1", "total_cents": 1250}
	// o-1 1250 <nil>
	// true evt-43 true
	// hexeract: CloudEvents structured mode (content type "application/cloudevents+json"): event "evt-43": missing required attribute type
}

// ExampleToStructured writes a Hexeract message in structured mode, for a
// consumer that reads only that.
func ExampleToStructured() {
	ctx := router.WithCorrelationID(context.Background(), "conv-1")
	msg, err := router.NewMessage(ctx, OrderPlaced{OrderID: "o-1", Total: 1250}, router.EncodeOptions{
		ID: "0193-example", Source: "/shop", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	})
	if err != nil {
		panic(err)
	}
	s, err := router.ToStructured(msg) // or EncodeOptions{Structured: true}
	if err != nil {
		panic(err)
	}
	fmt.Println(s.UUID, s.Metadata.Get("content-type"))
	fmt.Println(string(s.Payload))
	// Output:
	// 0193-example application/cloudevents+json
	// {"specversion":"1.0","id":"0193-example","source":"/shop","type":"orders.placed","correlationid":"conv-1","datacontenttype":"application/json","time":"2026-01-02T03:04:05Z","data":{"order_id":"o-1","total_cents":1250}}
}

// ExampleStructuredPublisher writes the messages of one topic in structured
// mode and leaves the others in binary mode.
func ExampleStructuredPublisher() {
	transport := gochannel.New(gochannel.Config{Persistent: true}, nil)
	pub := router.StructuredPublisher(transport, func(topic string, _ *message.Message) bool {
		return topic == "orders.placed" // the topic a Dapr subscriber reads
	})
	for _, topic := range []string{"orders.placed", "orders.audit"} {
		msg, _ := router.NewMessage(context.Background(), OrderPlaced{OrderID: "o-1"}, router.EncodeOptions{})
		if err := pub.Publish(topic, msg); err != nil {
			panic(err)
		}
		got, _ := transport.Subscribe(context.Background(), topic)
		m := <-got
		m.Ack()
		fmt.Println(topic, m.Metadata.Get("content-type"))
	}
	// Output:
	// orders.placed application/cloudevents+json
	// orders.audit application/json
}

// StrictOrder is decoded strictly whatever the App's codec.
type StrictOrder struct {
	OrderID string `json:"order_id"`
}

func (StrictOrder) MessageType() string  { return "orders.strict" }
func (StrictOrder) StrictDecoding() bool { return true }

// ExampleStrictJSON refuses a payload with a field the struct does not have,
// naming it; a message type asks for it with StrictDecoding.
func ExampleStrictJSON() {
	var o OrderPlaced
	err := router.StrictJSON{}.Unmarshal([]byte(`{"order_id":"o-1","total":5}`), &o)
	fmt.Println(err)

	h, _ := router.NewHandlerFunc(router.HandlerFunc[StrictOrder](func(context.Context, StrictOrder) error { return nil }), router.JSON{})
	msg := message.NewMessage("m-1", []byte(`{"order_id":"o-1","note":"?"}`))
	msg.Metadata.Set("ce_type", "orders.strict")
	err = h(msg)
	fmt.Println(router.IsPermanent(err), err)
	// Output:
	// json: unknown field "total"
	// true hexeract: cannot decode message m-1 from (unknown topic) as "orders.strict": json: unknown field "note"
}
