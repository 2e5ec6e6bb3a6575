// Relay, publishing: a claimed batch goes to the publisher in seq order, one
// Publish call per run of rows with the same topic; a failed run falls back to
// one message at a time so a poison message is charged alone; rows behind a
// failed row of the same ordering key are put back untried. The batch's
// producer span is started here.

package outbox

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/hexeract/hexeract/internal/msgtrace"
	"github.com/hexeract/hexeract/store"
)

// outcome of a row in a batch.
const (
	delivered = iota
	failed    // publish failed: attempts+1, back off or die
	putBack   // not attempted (an earlier row with its key failed)
)

// process publishes a claimed batch in seq order and settles it: on
// PostgreSQL inside the claiming transaction (not committed: committed is
// false), elsewhere in a transaction of its own (committed is true).
func (r *Relay) process(ctx, bg context.Context, conn store.OutboxRelayConn, claimed []store.OutboxRow) (*inflight, bool, error) {
	start := time.Now()
	slices.SortFunc(claimed, func(a, b store.OutboxRow) int { return cmp.Compare(a.Seq, b.Seq) })

	mds, created := make([]message.Metadata, len(claimed)), make([]trace.SpanContext, len(claimed))
	ctx, span := r.startPublishSpan(ctx, claimed, mds, created)
	outcome := make([]uint8, len(claimed))
	errText := make([]string, len(claimed))
	r.publish(ctx, claimed, mds, created, outcome, errText)
	if ctx.Err() != nil {
		// Stopping: the messages carry ctx, and publishers that honour it
		// (AMQP, Redis, SQS) give up because of the cancellation, not the
		// broker. Put such rows back untouched instead of charging them an
		// attempt (or, on their last one, moving them to the dead table).
		for i := range outcome {
			if outcome[i] == failed {
				outcome[i] = putBack
			}
		}
	}

	p := &inflight{start: start, span: span}
	committed, err := conn.Settle(bg, r.settlement(claimed, outcome, errText, p))
	if err != nil {
		span.RecordError(err)
		span.End()
		return nil, false, fmt.Errorf("settle: %w", err)
	}
	return p, committed, nil
}

// startPublishSpan decodes the metadata of the claimed rows into mds and
// their creation contexts (the traceparent the outbox's "create" span
// wrote) into created, and starts the batch's producer span: "publish
// <topic>" ("publish" when the batch spans several topics), messaging
// operation type "send" and name "publish", linked to every row's creation
// context as the messaging conventions say for batches. When every traced
// row of the batch belongs to one trace, the span is also a child of the
// first row's creation context, so a single flow stays one trace.
func (r *Relay) startPublishSpan(ctx context.Context, claimed []store.OutboxRow, mds []message.Metadata, created []trace.SpanContext) (context.Context, trace.Span) {
	var parent trace.SpanContext
	oneTrace, oneTopic := true, true
	links := make([]trace.Link, 0, len(claimed))
	for i := range claimed {
		mds[i] = decodeMetadata(claimed[i].Metadata)
		if claimed[i].Topic != claimed[0].Topic {
			oneTopic = false
		}
		sc := trace.SpanContextFromContext(msgtrace.Extract(context.Background(), mds[i], msgtrace.TraceContext))
		if !sc.IsValid() {
			continue
		}
		created[i] = sc
		links = append(links, trace.Link{SpanContext: sc})
		if !parent.IsValid() {
			parent = sc
		} else if parent.TraceID() != sc.TraceID() {
			oneTrace = false
		}
	}
	name := "publish"
	attrs := []attribute.KeyValue{
		semconv.MessagingSystemKey.String(msgtrace.System),
		semconv.MessagingOperationTypeSend,
		semconv.MessagingOperationName("publish"),
		semconv.MessagingBatchMessageCount(len(claimed)),
		r.m.tableAttr,
	}
	if oneTopic {
		name += " " + claimed[0].Topic
		attrs = append(attrs, semconv.MessagingDestinationName(claimed[0].Topic))
	}
	if oneTrace && parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	}
	return r.m.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attrs...), trace.WithLinks(links...))
}

// publish publishes claimed rows in order, one Publish call per run of
// rows with the same topic, and records each row's outcome. Each message's
// context carries its creation context, so a tracing publisher's send span
// continues the producer's trace.
func (r *Relay) publish(ctx context.Context, claimed []store.OutboxRow, mds []message.Metadata, created []trace.SpanContext, outcome []uint8, errText []string) {
	span := trace.SpanFromContext(ctx)
	var blocked map[string]bool // keys with a failed row in this batch
	msgs := make([]*message.Message, 0, len(claimed))
	idx := make([]int, 0, len(claimed))
	fail := func(i int, err error) {
		outcome[i] = failed
		errText[i] = err.Error()
		if k := claimed[i].Key; k != "" {
			if blocked == nil {
				blocked = map[string]bool{}
			}
			blocked[k] = true
		}
	}
	flush := func(topic string) {
		if len(msgs) == 0 {
			return
		}
		if err := r.safePublish(topic, msgs); err != nil {
			span.RecordError(err)
			if len(msgs) == 1 {
				fail(idx[0], err)
			} else {
				r.publishOneByOne(topic, msgs, idx, claimed, outcome, fail, func(k string) bool { return blocked[k] })
			}
		}
		msgs, idx = msgs[:0], idx[:0]
	}
	topic := ""
	for i := range claimed {
		w := &claimed[i]
		if w.Key != "" && blocked[w.Key] {
			outcome[i] = putBack
			continue
		}
		if w.Topic != topic {
			flush(topic)
			topic = w.Topic
			if w.Key != "" && blocked[w.Key] { // the flush may have failed this key
				outcome[i] = putBack
				continue
			}
		}
		msg := message.NewMessage(w.ID, w.Payload)
		msg.Metadata = mds[i]
		mctx := ctx
		if created[i].IsValid() {
			mctx = trace.ContextWithRemoteSpanContext(ctx, created[i])
		}
		msg.SetContext(mctx)
		msgs = append(msgs, msg)
		idx = append(idx, i)
	}
	flush(topic)
}

// publishOneByOne publishes msgs one at a time after a publish of the whole
// run failed, so that one poison message (too large for the broker, say)
// is charged alone and its batch-mates go out. Messages behind a failed
// one with the same ordering key are put back untried. Two failures in a
// row look like a broker outage rather than a poison message: the rest of
// the run is then failed with that error without trying each message.
func (r *Relay) publishOneByOne(topic string, msgs []*message.Message, idx []int, claimed []store.OutboxRow, outcome []uint8, fail func(int, error), blocked func(string) bool) {
	streak := 0
	for j := range msgs {
		i := idx[j]
		if k := claimed[i].Key; k != "" && blocked(k) {
			outcome[i] = putBack
			continue
		}
		err := r.safePublish(topic, msgs[j:j+1])
		if err == nil {
			streak = 0
			continue
		}
		fail(i, err)
		if streak++; streak < 2 {
			continue
		}
		for _, rest := range idx[j+1:] {
			if k := claimed[rest].Key; k != "" && blocked(k) {
				outcome[rest] = putBack
			} else {
				fail(rest, err)
			}
		}
		return
	}
}

// safePublish calls the publisher, turning a panic into an error so a
// faulty publisher fails the batch instead of the process.
func (r *Relay) safePublish(topic string, msgs []*message.Message) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("publisher panicked: %v", p)
		}
	}()
	return r.pub.Publish(topic, msgs...)
}
