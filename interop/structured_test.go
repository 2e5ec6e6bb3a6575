package interop_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/adapters/gochannel"
	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
)

// rawTransport publishes bytes the way a non-Hexeract producer does: no
// Watermill UUID header, only the headers and content type given.
type rawTransport struct {
	transport
	// publish sends body to topic; contentType "" sends none.
	publish func(t *testing.T, topic, contentType string, headers map[string]string, body []byte)
}

func rawRabbitMQ(t *testing.T) rawTransport {
	tr := rabbitMQ(t)
	url := testenv.AMQPURL(t)
	return rawTransport{transport: tr, publish: func(t *testing.T, topic, contentType string, headers map[string]string, body []byte) {
		t.Helper()
		conn, err := amqp091.Dial(url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		defer ch.Close()
		if err := ch.Confirm(false); err != nil {
			t.Fatal(err)
		}
		// The exchange Hexeract declares: durable fanout named after the topic.
		if err := ch.ExchangeDeclare(topic, "fanout", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		table := amqp091.Table{}
		for k, v := range headers {
			table[k] = v
		}
		conf, err := ch.PublishWithDeferredConfirm(topic, "", true, false, amqp091.Publishing{
			ContentType: contentType, Headers: table, Body: body, DeliveryMode: amqp091.Persistent,
		})
		if err != nil {
			t.Fatal(err)
		}
		if !conf.Wait() {
			t.Fatal("RabbitMQ did not confirm the publish")
		}
	}}
}

func rawKafka(t *testing.T) rawTransport {
	tr := kafkaTransport(t)
	return rawTransport{transport: tr, publish: func(t *testing.T, topic, contentType string, headers map[string]string, body []byte) {
		t.Helper()
		cfg := sarama.NewConfig()
		cfg.Producer.Return.Successes = true
		cfg.Producer.RequiredAcks = sarama.WaitForAll
		p, err := sarama.NewSyncProducer(tr.brokers, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		rec := &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(body)}
		if contentType != "" {
			rec.Headers = append(rec.Headers, sarama.RecordHeader{Key: []byte("content-type"), Value: []byte(contentType)})
		}
		for k, v := range headers {
			rec.Headers = append(rec.Headers, sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
		}
		if _, _, err := p.SendMessage(rec); err != nil {
			t.Fatal(err)
		}
	}}
}

func rawGoChannel(t *testing.T) rawTransport {
	ps := gochannel.New(gochannel.Config{Buffer: 64}, nil)
	t.Cleanup(func() { _ = ps.Close() })
	return rawTransport{
		transport: transport{
			newPubSub: func(*testing.T, string) (message.Publisher, message.Subscriber) { return ps, ps },
			cleanup:   func(*testing.T, []string, []string) {},
		},
		publish: func(t *testing.T, topic, contentType string, headers map[string]string, body []byte) {
			t.Helper()
			msg := message.NewMessage("", body)
			if contentType != "" {
				msg.Metadata.Set(router.KeyContentType, contentType)
			}
			for k, v := range headers {
				msg.Metadata.Set(k, v)
			}
			if err := ps.Publish(topic, msg); err != nil {
				t.Fatal(err)
			}
		},
	}
}

// PaymentCaptured is decoded strictly, whatever the App's codec.
type PaymentCaptured struct {
	PaymentID string `json:"payment_id"`
}

func (PaymentCaptured) MessageType() string  { return "payments.captured" }
func (PaymentCaptured) StrictDecoding() bool { return true }

// harness is a running App with typed handlers for OrderPlaced (replying
// OrderAccepted) and PaymentCaptured, and readers of the dead letters of
// both and of the replies.
type harness struct {
	app                        *hexeract.App
	topicOf                    func(string) string
	orders                     chan handled
	payments                   chan PaymentCaptured
	deadOrders, deadPays, acks <-chan *message.Message
}

func startApp(t *testing.T, tr transport) *harness {
	t.Helper()
	sfx := testenv.Suffix()
	prefix := "structured-" + sfx + "."
	topicOf := func(name string) string { return prefix + name }
	group, readers := "go-"+sfx, "check-"+sfx
	topics := []string{topicOf("orders.placed"), topicOf("orders.accepted"), topicOf("payments.captured")}
	t.Cleanup(func() {
		tr.cleanup(t, append(topics, middleware.DLQTopic(topics[0]), middleware.DLQTopic(topics[2])), []string{group, readers})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)

	pub, sub := tr.newPubSub(t, group)
	app, err := hexeract.New(
		hexeract.WithPubSub(pub, sub),
		hexeract.WithSource("/go-shop"),
		hexeract.WithTopicFunc(topicOf),
		hexeract.WithLogger(slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))),
	)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{app: app, topicOf: topicOf, orders: make(chan handled, 8), payments: make(chan PaymentCaptured, 8)}
	if err := hexeract.HandleFunc(app, func(ctx context.Context, o OrderPlaced) error {
		env, _ := router.EnvelopeFrom(ctx)
		h.orders <- handled{o, env}
		return app.Publish(ctx, OrderAccepted{OrderID: o.OrderID})
	}); err != nil {
		t.Fatal(err)
	}
	if err := hexeract.HandleFunc(app, func(_ context.Context, p PaymentCaptured) error {
		h.payments <- p
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_, readSub := tr.newPubSub(t, readers)
	subscribe := func(topic string) <-chan *message.Message {
		ch, err := readSub.Subscribe(ctx, topic)
		if err != nil {
			t.Fatalf("subscribe %s: %v", topic, err)
		}
		return ch
	}
	h.deadOrders, h.deadPays, h.acks = subscribe(middleware.DLQTopic(topics[0])), subscribe(middleware.DLQTopic(topics[2])), subscribe(topics[1])

	testenv.StartApp(t, app)
	return h
}

func next[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("no %s within 20s", what)
		panic("unreachable")
	}
}

const daprTraceParent = "00-113ad9c4e42b27583ae98ba698d54255-e3743e35ff56f219-01"

// daprEvent is the envelope Dapr's pub/sub writes around a published
// payload, with the type set through the publish metadata
// cloudevent.type (Dapr's default type is com.dapr.event.sent).
func daprEvent(t *testing.T, id string, data any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"data":            data,
		"datacontenttype": "application/json",
		"id":              id,
		"pubsubname":      "order_pub_sub",
		"source":          "checkout",
		"specversion":     "1.0",
		"time":            time.Now().UTC().Format(time.RFC3339),
		"topic":           "orders",
		"traceid":         daprTraceParent,
		"traceparent":     daprTraceParent,
		"tracestate":      "",
		"type":            "orders.placed",
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDaprRabbitMQ: Dapr's RabbitMQ component publishes its CloudEvent
// envelope as the body with the content-type property text/plain (its
// default) and no headers. The typed handler gets the order with the
// event's envelope, and its reply is correlated with the Dapr event.
func TestDaprRabbitMQ(t *testing.T) { testDapr(t, rawRabbitMQ(t), "text/plain") }

// TestDaprKafka: Dapr's Kafka component writes the envelope as the record
// value with no content-type header (headers come only from the publish
// request's metadata).
func TestDaprKafka(t *testing.T) { testDapr(t, rawKafka(t), "") }

func testDapr(t *testing.T, tr rawTransport, contentType string) {
	h := startApp(t, tr.transport)
	id := "dapr-" + testenv.Suffix()
	tr.publish(t, h.topicOf("orders.placed"), contentType, nil, daprEvent(t, id, map[string]any{"order_id": "o-dapr", "amount_cents": 990}))

	got := next(t, h.orders, "order from the Dapr producer")
	if got.msg != (OrderPlaced{OrderID: "o-dapr", AmountCents: 990}) {
		t.Errorf("handler got %+v", got.msg)
	}
	e := got.env
	if e.ID != id || e.Type != "orders.placed" || e.Source != "checkout" || e.SpecVersion != "1.0" || e.ContentType != "application/json" ||
		e.Time.IsZero() || e.Metadata.Get(router.KeyTraceParent) != daprTraceParent || e.Metadata.Get("ce_pubsubname") != "order_pub_sub" {
		t.Errorf("envelope id %q type %q source %q spec %q ct %q time %v traceparent %q metadata %v",
			e.ID, e.Type, e.Source, e.SpecVersion, e.ContentType, e.Time, e.Metadata.Get(router.KeyTraceParent), e.Metadata)
	}
	// Dapr's envelope has no correlation id: the conversation starts at the event.
	reply := next(t, h.acks, "reply")
	reply.Ack()
	if reply.Metadata.Get(router.KeyCorrelationID) != id || reply.Metadata.Get(router.KeyCausationID) != id {
		t.Errorf("reply correlation %q causation %q, want the Dapr event id %q", reply.Metadata.Get(router.KeyCorrelationID), reply.Metadata.Get(router.KeyCausationID), id)
	}
}

// TestWrongShapesGoChannel and TestWrongShapesRabbitMQ send events a typed
// handler must not take, through hexeract.New with the default middleware:
// each ends in the dead-letter topic with a fault that says what is wrong
// and a non-empty id, and the consumer goes on.
func TestWrongShapesGoChannel(t *testing.T) { testWrongShapes(t, rawGoChannel(t)) }

// TestWrongShapesRabbitMQ: see TestWrongShapesGoChannel.
func TestWrongShapesRabbitMQ(t *testing.T) { testWrongShapes(t, rawRabbitMQ(t)) }

func testWrongShapes(t *testing.T, tr rawTransport) {
	h := startApp(t, tr.transport)
	orders := h.topicOf("orders.placed")
	const ce = router.ContentTypeCloudEvents
	head := func(id string) string {
		return `"specversion":"1.0","id":"` + id + `","source":"/producer","type":"orders.placed"`
	}
	for _, tc := range []struct {
		name, contentType string
		headers           map[string]string
		body              string
		wantID            string // "" = generated and marked
		wantFault         []string
	}{
		{"no type", ce, nil, `{"specversion":"1.0","id":"w-1","source":"/producer","data":{}}`, "w-1",
			[]string{"CloudEvents structured mode", `event "w-1"`, "missing required attribute type"}},
		{"specversion 0.3", ce + "; charset=utf-8", nil, `{"specversion":"0.3","id":"w-2","source":"/p","type":"orders.placed"}`, "w-2",
			[]string{`content type "application/cloudevents+json; charset=utf-8"`, `unsupported specversion "0.3"`}},
		{"data and data_base64", ce, nil, `{` + head("w-3") + `,"data":{},"data_base64":"AA=="}`, "w-3",
			[]string{"both data and data_base64"}},
		{"invalid base64", ce, nil, `{` + head("w-4") + `,"data_base64":"not base64!"}`, "w-4",
			[]string{"data_base64 is not valid base64"}},
		{"not JSON", ce, nil, `{"id":"w-5",`, "",
			[]string{"CloudEvents structured mode", "the body is not JSON"}},
		{"data of another shape", ce, nil, `{` + head("w-6") + `,"data":{"order_id":7}}`, "w-6",
			[]string{"cannot unmarshal number"}},
	} {
		tr.publish(t, orders, tc.contentType, tc.headers, []byte(tc.body))
		dead := next(t, h.deadOrders, "dead letter of "+tc.name)
		dead.Ack()
		f, _ := middleware.FaultOf(dead.Metadata)
		for _, part := range tc.wantFault {
			if !strings.Contains(f.Error, part) {
				t.Errorf("%s: fault %q does not contain %q", tc.name, f.Error, part)
			}
		}
		if !f.Permanent || f.Attempts != 1 || f.Type != "*router.DecodeError" {
			t.Errorf("%s: fault %+v; want permanent, 1 attempt, *router.DecodeError", tc.name, f)
		}
		generated := dead.Metadata.Get(router.KeyFaultGeneratedID)
		switch {
		case dead.UUID == "":
			t.Errorf("%s: dead letter without id", tc.name)
		case tc.wantID == "" && generated != "true":
			t.Errorf("%s: dead letter id %q not marked as generated", tc.name, dead.UUID)
		case tc.wantID != "" && (dead.UUID != tc.wantID || generated != ""):
			t.Errorf("%s: dead letter id %q (generated %q), want %q", tc.name, dead.UUID, generated, tc.wantID)
		}
		if string(dead.Payload) != tc.body {
			t.Errorf("%s: dead letter body %q, want the original", tc.name, dead.Payload)
		}
	}

	// A structured event that also carries a type header: the handler gets
	// the event's data, not a zero value.
	tr.publish(t, orders, ce, map[string]string{"ce_type": "orders.placed"},
		[]byte(`{`+head("w-ok")+`,"correlationid":"conv-w","data":{"order_id":"o-w","amount_cents":5}}`))
	got := next(t, h.orders, "the valid structured order")
	if got.msg != (OrderPlaced{OrderID: "o-w", AmountCents: 5}) || got.env.ID != "w-ok" || got.env.CorrelationID != "conv-w" {
		t.Errorf("handler got %+v, envelope %+v", got.msg, got.env)
	}

	// Strict decoding (PaymentCaptured.StrictDecoding): an unknown field is
	// a dead letter naming the field, in binary and in structured mode.
	payments := h.topicOf("payments.captured")
	tr.publish(t, payments, "application/json", map[string]string{
		"ce_id": "p-1", "ce_type": "payments.captured", "ce_source": "/psp", "ce_specversion": "1.0",
	}, []byte(`{"payment_id":"p-1","amount":5}`))
	tr.publish(t, payments, ce, nil, []byte(`{"specversion":"1.0","id":"p-2","source":"/psp","type":"payments.captured","data":{"paymentId":"p-2"}}`))
	unknown := map[string]string{"p-1": "amount", "p-2": "paymentId"} // dead letter id -> the field it must name
	for range 2 {
		dead := next(t, h.deadPays, "dead letter of a payment")
		dead.Ack()
		f, _ := middleware.FaultOf(dead.Metadata)
		field, ok := unknown[dead.UUID]
		delete(unknown, dead.UUID)
		if !ok || !strings.Contains(f.Error, `json: unknown field "`+field+`"`) || !strings.Contains(f.Error, "message "+dead.UUID+" ") || !f.Permanent {
			t.Errorf("payment dead letter %q: %+v; want p-1 and p-2 once each, with the unknown field named", dead.UUID, f)
		}
	}
	tr.publish(t, payments, "application/json", map[string]string{
		"ce_id": "p-3", "ce_type": "payments.captured", "ce_source": "/psp", "ce_specversion": "1.0",
	}, []byte(`{"payment_id":"p-3"}`))
	if p := next(t, h.payments, "the valid payment"); p.PaymentID != "p-3" {
		t.Errorf("payment %+v", p)
	}
}
