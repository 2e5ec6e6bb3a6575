// Package reqreply is typed request/reply (RPC) over Hexeract's
// asynchronous bus, on any Watermill transport.
//
// A responder answers one request type:
//
//	reqreply.Handle(app, func(ctx context.Context, q GetPrice) (Price, error) {
//		return Price{SKU: q.SKU, Cents: 1299}, nil
//	})
//
// and a caller waits for the answer:
//
//	price, err := reqreply.Request[GetPrice, Price](ctx, app, GetPrice{SKU: "A-1"})
//
// # How it works
//
// Each App instance has one [Client], attached to the App (it subscribes
// when the App runs, or at its first request, and App.Close closes it; the
// counters are read with [StatsFor] or [Client.Stats]): one subscription to its own reply topic
// ("hexeract.replies.<instance id>") and a table of pending requests keyed
// by request id (the request's ce_id). Unlike Watermill's
// components/requestreply, which subscribes once per call and filters every
// reply, a request costs no subscription, so many concurrent requests from
// one process are cheap on every transport.
//
// Where replies travel is derived from the App's transport (see
// [ReplyTransport]): on RabbitMQ (adapters/amqp) an exclusive, auto-deleted
// queue per caller instance, on NATS (adapters/nats) core NATS subjects, on
// every other transport the per-instance reply topic on the App's
// subscriber. Neither side configures anything for it; [WithReplySubscriber]
// and [WithReplyPublisher] override it.
//
// A request is an ordinary Hexeract message with three more metadata keys:
// [router.KeyReplyTo] (the caller's reply topic), [router.KeyRequestID] and [router.KeyRequestDeadline].
// The correlation id is left alone: it follows the whole conversation, so a
// request sent from inside a handler stays in that handler's conversation and
// its reply carries the same correlation id, with the request's id as its
// causation id.
//
// The deadline is the earliest of the context's deadline, [Timeout] and the
// client's default ([DefaultTimeout]). The responder skips a request whose
// deadline passed before it was picked up, and runs the handler with a
// context that ends at the deadline. A reply that arrives after its caller
// gave up is dropped and counted ([Stats].LateReplies); it never reaches
// another caller.
//
// # Errors
//
// A handler's error reaches the caller as a [*RemoteError] carrying a code
// (see [NewError]), the message, and the permanent marker of
// [hexeract.Permanent]. A caller tells it apart from [ErrTimeout] (no reply
// in time) and [ErrNoResponder] (nobody confirmed receipt within
// [NoResponderTimeout]) with errors.Is and errors.As.
//
// # Several response types
//
// When Resp is an interface type (router.Message, or an interface of your
// own), the responder may answer with any message type, and the caller gets
// the concrete value to switch on; [RequestAny] is the router.Message form.
//
// # Tracing
//
// The request span (client kind) and the responder's span (server kind)
// belong to one trace: the W3C trace context travels in the traceparent and
// tracestate metadata of the request and of the reply. The reply gets a
// producer span ("send <reply topic>") whatever publisher sends it.
package reqreply
