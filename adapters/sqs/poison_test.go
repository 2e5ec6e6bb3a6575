package sqs_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/hexeract/hexeract/adapters/internal/suite"
	hsqs "github.com/hexeract/hexeract/adapters/sqs"
)

// TestPoisonMessages sends messages straight to the topic's queue with the
// AWS SDK, interleaved with good ones: packed metadata with values that are
// not strings and a Number attribute (handled, values in text form), a body
// that is not the base64 its attribute announces, packed metadata that is
// not a JSON object and an unknown body encoding (dead-lettered at once
// with a fault naming the cause, and deleted from the queue).
func TestPoisonMessages(t *testing.T) {
	cfg := testConfig(t)
	cfg.Client = rawClient(t, nil)
	topic := "poison-" + suffix()
	pub, sub := newPub(t, cfg), newSub(t, cfg)
	ctx := context.Background()
	t.Cleanup(func() {
		for _, q := range []string{topic, topic + ".dlq"} {
			if u, err := cfg.Client.GetQueueUrl(context.Background(), &sqs.GetQueueUrlInput{QueueName: aws.String(q)}); err == nil {
				_, _ = cfg.Client.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: u.QueueUrl})
			}
		}
	})
	str := func(v string) sqsAttrValue {
		return sqsAttrValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	msgs := []struct {
		body  string
		attrs map[string]sqsAttrValue
	}{
		{"good-1", map[string]sqsAttrValue{"ce_type": str(suite.GoodType)}},
		{"%%% bad-base64 %%%", map[string]sqsAttrValue{hsqs.AttrBodyEncoding: str("base64")}},
		{"good-packed", map[string]sqsAttrValue{hsqs.AttrMetadata: str(`{"n":42,"o":{"a":[true]},"s":"x"}`)}},
		{"bad-packed", map[string]sqsAttrValue{hsqs.AttrMetadata: str(`[1,2,3]`)}},
		{"good-number", map[string]sqsAttrValue{"retries": {DataType: aws.String("Number"), StringValue: aws.String("3")}}},
		{"bad-encoding", map[string]sqsAttrValue{hsqs.AttrBodyEncoding: str("rot13")}},
		{"good-2", nil},
	}
	suite.Poison(t, pub, sub, sub, topic, func(t *testing.T) {
		u, err := cfg.Client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(topic)})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			_, err := cfg.Client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: u.QueueUrl, MessageBody: aws.String(m.body), MessageAttributes: m.attrs})
			if err != nil {
				t.Fatal(err)
			}
		}
	}, suite.PoisonWant{
		Good: map[string]map[string]string{
			"good-1":      {"ce_type": suite.GoodType},
			"good-packed": {"n": "42", "o": `{"a":[true]}`, "s": "x"},
			"good-number": {"retries": "3"},
			"good-2":      nil,
		},
		Bad: map[string]string{
			"bad-base64":   "body is not base64",
			"bad-packed":   "not a JSON object",
			"bad-encoding": `unknown hexeract.body-encoding "rot13"`,
		},
	})
	if visible, inflight := queueCounts(t, cfg.Client, topic); visible != "0" || inflight != "0" {
		t.Fatalf("queue %s: %s visible, %s in flight; want 0, 0", topic, visible, inflight)
	}
}
