package sqs_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	hsqs "github.com/hexeract/hexeract/adapters/sqs"
)

// benchMessages is the number of ~100-byte messages each benchmark iteration
// sends and receives end to end: HEXERACT_SQS_BENCH_MESSAGES, default 20000.
func benchMessages(b *testing.B) int {
	if s := os.Getenv("HEXERACT_SQS_BENCH_MESSAGES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("HEXERACT_SQS_BENCH_MESSAGES=%q: not a positive number", s)
		}
		return n
	}
	return 20000
}

// benchPayload is a ~100-byte JSON body.
var benchPayload = []byte(`{"order_id":"o-0000000042","customer":"c-00000007","amount":1999,"currency":"EUR","note":"bench"}`)

// BenchmarkEndToEnd sends N messages of ~100 bytes to a fresh queue and
// receives and deletes them all, once with the raw AWS SDK (SendMessageBatch
// of 10, ReceiveMessage of 10, DeleteMessageBatch) and once through the
// adapter (one Publish of all N, Subscribe with one poller, Ack each).
// Producer and consumer run concurrently in both. Every iteration runs both,
// alternating which goes first, so both see the same server conditions. Run:
//
//	go test ./adapters/sqs -run '^$' -bench EndToEnd -benchtime 3x
//
// It reports raw_msgs/s, adapter_msgs/s (over all iterations) and
// adapter_vs_raw, their ratio. Queue creation and message building are
// outside the timings.
func BenchmarkEndToEnd(b *testing.B) {
	n := benchMessages(b)
	cfg := testConfig(b)
	cfg.Client = rawClient(b, nil)
	var rawTotal, adapterTotal time.Duration

	raw := func() {
		url := createBenchQueue(b, cfg.Client)
		start := time.Now()
		rawSendReceive(b, cfg.Client, url, n)
		rawTotal += time.Since(start)
	}
	adapter := func() {
		topic := "bench-" + suffix()
		pub, sub := newBenchPubSub(b, cfg)
		defer pub.Close()
		defer sub.Close()
		if err := sub.SubscribeInitialize(topic); err != nil {
			b.Fatal(err)
		}
		msgs := make([]*message.Message, n)
		for i := range msgs {
			msgs[i] = message.NewMessage(watermill.NewUUID(), benchPayload)
		}
		start := time.Now()
		adapterSendReceive(b, pub, sub, topic, msgs)
		adapterTotal += time.Since(start)
	}
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			raw()
			adapter()
		} else {
			adapter()
			raw()
		}
	}
	b.StopTimer()
	rawRate := float64(n*b.N) / rawTotal.Seconds()
	adapterRate := float64(n*b.N) / adapterTotal.Seconds()
	b.ReportMetric(rawRate, "raw_msgs/s")
	b.ReportMetric(adapterRate, "adapter_msgs/s")
	b.ReportMetric(adapterRate/rawRate, "adapter_vs_raw")
	b.ReportMetric(0, "ns/op") // the op is a pair of runs; the rates are the result
}

func newBenchPubSub(b *testing.B, cfg hsqs.Config) (*hsqs.Publisher, *hsqs.Subscriber) {
	pub, err := hsqs.NewPublisher(context.Background(), cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	sub, err := hsqs.NewSubscriber(context.Background(), cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	return pub, sub
}

func createBenchQueue(b *testing.B, client *sqs.Client) *string {
	out, err := client.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String("bench-raw-" + suffix())})
	if err != nil {
		b.Fatal(err)
	}
	return out.QueueUrl
}

// rawSendReceive is what a hand-written SDK client does.
func rawSendReceive(b *testing.B, client *sqs.Client, url *string, n int) {
	ctx := context.Background()
	sendErr := make(chan error, 1)
	go func() {
		entries := make([]types.SendMessageBatchRequestEntry, 0, 10)
		for i := 0; i < n; {
			entries = entries[:0]
			for j := 0; j < 10 && i < n; j, i = j+1, i+1 {
				entries = append(entries, types.SendMessageBatchRequestEntry{
					Id: aws.String(strconv.Itoa(j)), MessageBody: aws.String(string(benchPayload)),
					MessageAttributes: map[string]types.MessageAttributeValue{
						"uuid": {DataType: aws.String("String"), StringValue: aws.String(watermill.NewUUID())},
					},
				})
			}
			out, err := client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: url, Entries: entries})
			if err == nil && len(out.Failed) > 0 {
				err = fmt.Errorf("%d entries failed", len(out.Failed))
			}
			if err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- nil
	}()
	received := 0
	deletes := make([]types.DeleteMessageBatchRequestEntry, 0, 10)
	for received < n {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 20, VisibilityTimeout: 30,
			MessageAttributeNames: []string{"All"},
		})
		if err != nil {
			b.Fatal(err)
		}
		deletes = deletes[:0]
		for i, m := range out.Messages {
			if !bytes.Equal([]byte(aws.ToString(m.Body)), benchPayload) {
				b.Fatalf("unexpected body %q", aws.ToString(m.Body))
			}
			deletes = append(deletes, types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
		}
		if len(deletes) > 0 {
			if _, err := client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: url, Entries: deletes}); err != nil {
				b.Fatal(err)
			}
		}
		received += len(out.Messages)
	}
	if err := <-sendErr; err != nil {
		b.Fatal(err)
	}
}

// adapterSendReceive does the same through the Watermill adapter.
func adapterSendReceive(b *testing.B, pub *hsqs.Publisher, sub *hsqs.Subscriber, topic string, msgs []*message.Message) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, err := sub.Subscribe(ctx, topic)
	if err != nil {
		b.Fatal(err)
	}
	sendErr := make(chan error, 1)
	go func() { sendErr <- pub.Publish(topic, msgs...) }()
	seen := make(map[string]struct{}, len(msgs))
	for len(seen) < len(msgs) {
		select {
		case m := <-out:
			if !bytes.Equal(m.Payload, benchPayload) {
				b.Fatalf("unexpected payload %q", m.Payload)
			}
			seen[m.UUID] = struct{}{}
			m.Ack()
		case <-time.After(30 * time.Second):
			b.Fatalf("received %d of %d messages, then nothing for 30s", len(seen), len(msgs))
		}
	}
	if err := <-sendErr; err != nil {
		b.Fatal(err)
	}
}
