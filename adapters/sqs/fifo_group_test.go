package sqs_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	smithymw "github.com/aws/smithy-go/middleware"

	hsqs "github.com/hexeract/hexeract/adapters/sqs"
)

// validGroupID is SQS's rule for MessageGroupId: 1 to 128 characters of
// letters, digits and punctuation (printable ASCII without space). The
// emulator does not check it; SQS refuses the message.
func validGroupID(id string) bool {
	if len(id) < 1 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// TestFIFOGroupIDFromAnyPartitionKey checks that partition keys SQS does not
// accept as MessageGroupId (a space, non-ASCII, over 128 characters) are sent
// as a valid group ID, the same for the same key, and that each key's
// messages keep their order. They used to be sent as they were, which SQS
// rejects (InvalidParameterValue), so such keyed messages could not be
// published to FIFO queues.
func TestFIFOGroupIDFromAnyPartitionKey(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	groups := map[string]string{} // body -> MessageGroupId sent
	capture := smithymw.InitializeMiddlewareFunc("hexeract-test-capture", func(ctx context.Context, in smithymw.InitializeInput, next smithymw.InitializeHandler) (smithymw.InitializeOutput, smithymw.Metadata, error) {
		if input, ok := in.Parameters.(*sqs.SendMessageBatchInput); ok {
			mu.Lock()
			for _, e := range input.Entries {
				groups[aws.ToString(e.MessageBody)] = aws.ToString(e.MessageGroupId)
			}
			mu.Unlock()
		}
		return next.HandleInitialize(ctx, in)
	})
	cfg := testConfig(t)
	cfg.Client = sqs.New(rawClient(t, nil).Options(), func(o *sqs.Options) {
		o.APIOptions = append(o.APIOptions, func(s *smithymw.Stack) error { return s.Initialize.Add(capture, smithymw.After) })
	})
	keys := []string{"John Smith", "kundé", strings.Repeat("k", 129), "order-42"}
	topic := "groups-" + suffix() + ".fifo"
	pub, sub := newPub(t, cfg), newSub(t, cfg)
	var sent []*message.Message
	for i := range 3 * len(keys) {
		m := message.NewMessage(watermill.NewUUID(), fmt.Appendf(nil, "%d", i))
		m.Metadata.Set(hsqs.DefaultGroupIDKey, keys[i%len(keys)])
		sent = append(sent, m)
	}
	if err := pub.Publish(topic, sent...); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	idOf := map[string]string{} // key -> group ID
	for i, m := range sent {
		key, id := keys[i%len(keys)], groups[string(m.Payload)]
		if !validGroupID(id) {
			t.Errorf("key %.20q sent as MessageGroupId %.20q, which SQS refuses", key, id)
		}
		if prev, ok := idOf[key]; ok && prev != id {
			t.Errorf("key %.20q sent as two group IDs %q and %q", key, prev, id)
		}
		idOf[key] = id
	}
	mu.Unlock()
	if idOf["order-42"] != "order-42" {
		t.Errorf("valid key order-42 sent as %q, want it unchanged", idOf["order-42"])
	}
	if len(map[string]bool{idOf[keys[0]]: true, idOf[keys[1]]: true, idOf[keys[2]]: true, idOf[keys[3]]: true}) != len(keys) {
		t.Errorf("different keys share a group ID: %v", idOf)
	}

	msgs, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	order := map[string][]string{}
	for range sent {
		m := receiveOne(t, msgs, 10*time.Second)
		k := m.Metadata.Get(hsqs.DefaultGroupIDKey)
		order[k] = append(order[k], string(m.Payload))
		m.Ack()
	}
	for i, m := range sent {
		k := keys[i%len(keys)]
		if order[k][i/len(keys)] != string(m.Payload) {
			t.Fatalf("key %.20q: order %v broken at message %d", k, order[k], i)
		}
	}
}

// TestFIFODeduplicationIDFromAnyUUID checks that a message UUID SQS does not
// accept as MessageDeduplicationId (Watermill lets applications choose any
// string) is sent as a valid one, the same for the same UUID, and that the
// message is delivered.
func TestFIFODeduplicationIDFromAnyUUID(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	dedup := map[string]string{} // body -> MessageDeduplicationId sent
	capture := smithymw.InitializeMiddlewareFunc("hexeract-test-capture-dedup", func(ctx context.Context, in smithymw.InitializeInput, next smithymw.InitializeHandler) (smithymw.InitializeOutput, smithymw.Metadata, error) {
		if input, ok := in.Parameters.(*sqs.SendMessageBatchInput); ok {
			mu.Lock()
			for _, e := range input.Entries {
				dedup[aws.ToString(e.MessageBody)] = aws.ToString(e.MessageDeduplicationId)
			}
			mu.Unlock()
		}
		return next.HandleInitialize(ctx, in)
	})
	cfg := testConfig(t)
	cfg.Client = sqs.New(rawClient(t, nil).Options(), func(o *sqs.Options) {
		o.APIOptions = append(o.APIOptions, func(s *smithymw.Stack) error { return s.Initialize.Add(capture, smithymw.After) })
	})
	topic := "dedup-" + suffix() + ".fifo"
	pub, sub := newPub(t, cfg), newSub(t, cfg)
	uuids := []string{"order 42 / retry #1", "kundé-7", watermill.NewUUID()}
	for i, id := range uuids {
		if err := pub.Publish(topic, message.NewMessage(id, fmt.Appendf(nil, "%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	for i, id := range uuids {
		got := dedup[fmt.Sprint(i)]
		if !validGroupID(got) {
			t.Errorf("UUID %q sent as MessageDeduplicationId %q, which SQS refuses", id, got)
		}
		if validGroupID(id) && got != id {
			t.Errorf("valid UUID %q sent as %q, want it unchanged", id, got)
		}
	}
	mu.Unlock()
	msgs, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	for range uuids {
		m := receiveOne(t, msgs, 10*time.Second)
		m.Ack()
	}
}
