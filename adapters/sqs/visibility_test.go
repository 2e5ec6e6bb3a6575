package sqs_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/hexeract/hexeract/internal/testenv"
)

// TestExpiredHeldMessagesAreNotHandedOut checks that messages of a received
// batch whose visibility timeout ran out while an earlier message of the
// batch was being handled are not handed out: SQS made them visible again
// and another consumer may hold them. They used to be handed out anyway, so
// two consumers handled the same message at the same time.
func TestExpiredHeldMessagesAreNotHandedOut(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.VisibilityTimeout = time.Second
	cfg.MaxMessages = 3
	topic := "expired-" + suffix()
	pub, sub := newPub(t, cfg), newSub(t, cfg)
	if err := pub.Publish(topic,
		message.NewMessage(watermill.NewUUID(), []byte("a")),
		message.NewMessage(watermill.NewUUID(), []byte("b")),
		message.NewMessage(watermill.NewUUID(), []byte("c")),
	); err != nil {
		t.Fatal(err)
	}
	ch, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	first := receiveOne(t, ch, 10*time.Second)

	// While the first message is in its handler, the visibility of the
	// others runs out and another consumer receives them.
	other := rawClient(t, nil)
	u, err := other.GetQueueUrl(context.Background(), &sqs.GetQueueUrlInput{QueueName: aws.String(topic)})
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]bool{}
	testenv.WaitFor(t, 10*time.Second, "the other consumer to receive the held messages", func() bool {
		out, err := other.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: u.QueueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 60, WaitTimeSeconds: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			held[aws.ToString(m.Body)] = true
		}
		return held["b"] && held["c"]
	})
	first.Ack()

	select {
	case m, ok := <-ch:
		if ok {
			t.Fatalf("the subscriber handed out %q while another consumer holds it", m.Payload)
		}
	case <-time.After(2 * time.Second): // the other consumer holds b and c for 60s
	}
}
