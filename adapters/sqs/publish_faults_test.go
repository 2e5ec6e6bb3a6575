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
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	smithymw "github.com/aws/smithy-go/middleware"

	"github.com/hexeract/hexeract/internal/testenv"
)

// batchFault is one entry SendMessageBatch answers as failed without sending
// it: on call number call (1-based), for the entry whose body is body.
type batchFault struct {
	call        int
	body        string
	senderFault bool
}

// faultyClient returns a client of the test server whose SendMessageBatch
// calls fail the entries faults name, the way SQS reports a partial failure:
// the other entries are really sent, the named ones are left out and listed
// in Failed under the Id the caller gave them.
func faultyClient(t *testing.T, faults []batchFault) *sqs.Client {
	t.Helper()
	var mu sync.Mutex
	calls := 0
	inject := smithymw.InitializeMiddlewareFunc("hexeract-test-faults", func(ctx context.Context, in smithymw.InitializeInput, next smithymw.InitializeHandler) (smithymw.InitializeOutput, smithymw.Metadata, error) {
		input, ok := in.Parameters.(*sqs.SendMessageBatchInput)
		if !ok {
			return next.HandleInitialize(ctx, in)
		}
		mu.Lock()
		calls++
		call := calls
		mu.Unlock()
		sent := *input
		sent.Entries = nil
		var failed []types.BatchResultErrorEntry
		for _, e := range input.Entries {
			fault := -1
			for i, f := range faults {
				if f.call == call && f.body == aws.ToString(e.MessageBody) {
					fault = i
				}
			}
			if fault < 0 {
				sent.Entries = append(sent.Entries, e)
				continue
			}
			code := "InternalError"
			if faults[fault].senderFault {
				code = "InvalidParameterValue"
			}
			failed = append(failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String(code), Message: aws.String("injected"), SenderFault: faults[fault].senderFault})
		}
		in.Parameters = &sent
		out, md, err := next.HandleInitialize(ctx, in)
		if err == nil {
			res := out.Result.(*sqs.SendMessageBatchOutput)
			res.Failed = append(res.Failed, failed...)
		}
		return out, md, err
	})
	return sqs.New(rawClient(t, nil).Options(), func(o *sqs.Options) {
		o.APIOptions = append(o.APIOptions, func(s *smithymw.Stack) error { return s.Initialize.Add(inject, smithymw.After) })
	})
}

// drain receives and deletes messages of queue until want distinct bodies
// arrived, and returns how often each body was received.
func drain(t *testing.T, client *sqs.Client, queue string, want int) map[string]int {
	t.Helper()
	ctx := context.Background()
	u, err := client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(queue)})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("%d distinct messages in queue %s", want, queue), func() bool {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: u.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			got[aws.ToString(m.Body)]++
			if _, err := client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: u.QueueUrl, ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
		return len(got) >= want
	})
	return got
}

func bodies(n int) []*message.Message {
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage(watermill.NewUUID(), fmt.Appendf(nil, "m%d", i))
	}
	return msgs
}

// TestPublishRetriesTheEntriesThatFailed checks that entries SQS fails with a
// server fault are retried as themselves. The retry used to keep the entries'
// first Ids while sending only the failed ones, so a second failure was
// mapped to the wrong entry: here m1 was never sent, m2 was sent twice, and
// Publish returned nil.
func TestPublishRetriesTheEntriesThatFailed(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Client = faultyClient(t, []batchFault{
		{call: 1, body: "m1"}, {call: 1, body: "m2"}, // both retried in call 2
		{call: 2, body: "m1"}, // retried again in call 3
	})
	topic := "retry-" + suffix()
	pub := newPub(t, cfg)
	if err := pub.Publish(topic, bodies(10)...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	got := drain(t, rawClient(t, nil), topic, 10)
	for i := range 10 {
		if n := got[fmt.Sprintf("m%d", i)]; n != 1 {
			t.Errorf("m%d received %d times, want once (all: %v)", i, n, got)
		}
	}
}

// TestPublishRetriesServerFaultsBesideRejections checks that when one batch
// has both an entry SQS rejects (sender fault) and one it failed with a server
// fault, the second is still retried and the error names only the first. The
// server-fault entry used to be neither sent nor named in the error.
func TestPublishRetriesServerFaultsBesideRejections(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Client = faultyClient(t, []batchFault{
		{call: 1, body: "m1", senderFault: true},
		{call: 1, body: "m2"},
	})
	topic := "retry-mixed-" + suffix()
	pub := newPub(t, cfg)
	msgs := bodies(3)
	err := pub.Publish(topic, msgs...)
	if err == nil || !strings.Contains(err.Error(), msgs[1].UUID) || strings.Contains(err.Error(), msgs[2].UUID) || strings.Contains(err.Error(), msgs[0].UUID) {
		t.Fatalf("err = %v; want one naming only %s (m1)", err, msgs[1].UUID)
	}
	got := drain(t, rawClient(t, nil), topic, 2)
	if got["m0"] != 1 || got["m2"] != 1 || got["m1"] != 0 {
		t.Fatalf("received %v, want m0 and m2 once, m1 never", got)
	}
}

// TestPublishOversizedSendsNothing checks that a message over
// MaxMessageBytes fails the whole Publish call before anything is sent, with
// an error that names it, its size, the limit, and says nothing was sent.
// The check used to run message by message while batches were filled: the
// messages before the big one in its batch were silently not sent (while the
// error said "nothing from this message on was sent"), and earlier full
// batches were sent.
func TestPublishOversizedSendsNothing(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	topic := "oversized-" + suffix()
	if err := newSub(t, cfg).SubscribeInitialize(topic); err != nil {
		t.Fatal(err)
	}
	pub := newPub(t, cfg)
	msgs := bodies(12)
	big := message.NewMessage(watermill.NewUUID(), []byte(strings.Repeat("z", 300*1024)))
	err := pub.Publish(topic, append(msgs, big)...)
	if err == nil {
		t.Fatal("oversized message accepted")
	}
	for _, want := range []string{big.UUID, "MaxMessageBytes", "262144", "none of the 13 messages"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if visible, inflight := queueCounts(t, rawClient(t, nil), topic); visible != "0" || inflight != "0" {
		t.Fatalf("queue holds %s visible and %s in-flight messages after a refused Publish, want none", visible, inflight)
	}
	if err := pub.Publish(topic, msgs...); err != nil {
		t.Fatalf("Publish of the small messages alone: %v", err)
	}
}
