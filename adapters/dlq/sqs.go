package dlq

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	hsqs "github.com/hexeract/hexeract/adapters/sqs"
)

// sqsVisibility is how long a message received by a read or a move stays
// invisible; reads make every message visible again at once when done.
const sqsVisibility = 60

// sqsDriver: SQS has no peek. A read receives the messages with a
// visibility timeout (so one pass sees each message once) and then makes
// every message visible again at once (ChangeMessageVisibility 0); the
// messages stay in the queue, in the same number, but their
// ApproximateReceiveCount grows by one, which counts towards the
// maxReceiveCount of a redrive policy. A move sends to the destination's
// queue with the adapter's publisher, then deletes the dead letter.
type sqsDriver struct {
	cfg    hsqs.Config
	client *awssqs.Client
	pub    message.Publisher
}

func openSQS(ctx context.Context, rawURL string) (driver, error) {
	// SQS has no consumer groups; adapters.Open ignores the parameter too.
	parsed, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("dlq: the sqs URL does not parse") // the URL error would quote its credentials
	}
	q := parsed.Query()
	q.Del("group")
	parsed.RawQuery = q.Encode()
	u := parsed.String()
	cfg, err := hsqs.ParseURL(u)
	if err != nil {
		return nil, err
	}
	cfg.SetDefaults()
	client, err := cfg.NewClient(ctx)
	if err != nil {
		return nil, err
	}
	cfg.Client = client
	pub, err := hsqs.NewPublisher(ctx, cfg, nil)
	if err != nil {
		return nil, err
	}
	return &sqsDriver{cfg: cfg, client: client, pub: pub}, nil
}

func (d *sqsDriver) close() error { return d.pub.Close() }

func (d *sqsDriver) topics(ctx context.Context) ([]string, error) {
	var out []string
	p := awssqs.NewListQueuesPaginator(d.client, &awssqs.ListQueuesInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, u := range page.QueueUrls {
			out = append(out, u[strings.LastIndex(u, "/")+1:])
		}
	}
	return out, nil
}

// queueURL returns the URL of topic's queue, "" when it does not exist.
func (d *sqsDriver) queueURL(ctx context.Context, topic string) (string, error) {
	name, err := d.cfg.QueueNameFunc(topic)
	if err != nil {
		return "", err
	}
	out, err := d.client.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String(name)})
	var missing *types.QueueDoesNotExist
	if errors.As(err, &missing) || (err != nil && strings.Contains(err.Error(), "NonExistentQueue")) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return aws.ToString(out.QueueUrl), nil
}

func (d *sqsDriver) check(ctx context.Context, topic, group string) error {
	if group != "" {
		return fmt.Errorf("dlq: SQS has no consumer groups (one queue per topic); drop the group %q", group)
	}
	u, err := d.queueURL(ctx, topic)
	if err != nil || u != "" {
		return err
	}
	all, err := d.topics(ctx)
	if err != nil {
		return err
	}
	return &UnknownError{Kind: "topic", Name: topic, Existing: dlqTopics(all)}
}

func (d *sqsDriver) approx(ctx context.Context, qurl string) (int, error) {
	out, err := d.client.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{
		QueueUrl: aws.String(qurl), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages},
	})
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)])
}

func (d *sqsDriver) receive(ctx context.Context, qurl string, max int) ([]types.Message, error) {
	if max > 10 || max <= 0 {
		max = 10
	}
	out, err := d.client.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{
		QueueUrl: aws.String(qurl), MaxNumberOfMessages: int32(max), VisibilityTimeout: sqsVisibility,
		WaitTimeSeconds: 0, MessageAttributeNames: []string{"All"},
	})
	if err != nil {
		return nil, err
	}
	return out.Messages, nil
}

// release makes messages visible again at once.
func (d *sqsDriver) release(ctx context.Context, qurl string, ms []types.Message) error {
	var errs []error
	for i := 0; i < len(ms); i += 10 {
		var entries []types.ChangeMessageVisibilityBatchRequestEntry
		for j, m := range ms[i:min(i+10, len(ms))] {
			entries = append(entries, types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(j)), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0})
		}
		out, err := d.client.ChangeMessageVisibilityBatch(ctx, &awssqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(qurl), Entries: entries})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, f := range out.Failed {
			errs = append(errs, fmt.Errorf("make a message visible again: %s", aws.ToString(f.Message)))
		}
	}
	return errors.Join(errs...)
}

func (d *sqsDriver) list(ctx context.Context, topic, _ string, limit int, fn func(*message.Message) error) (err error) {
	qurl, err := d.queueURL(ctx, topic)
	if err != nil {
		return err
	}
	var held []types.Message
	defer func() { err = errors.Join(err, d.release(context.WithoutCancel(ctx), qurl, held)) }()
	for limit == 0 || len(held) < limit {
		ms, err := d.receive(ctx, qurl, 10)
		if err != nil {
			return err
		}
		if len(ms) == 0 {
			break
		}
		held = append(held, ms...)
	}
	// A listing longer than the visibility timeout sees a message again:
	// print it once.
	seen := map[string]bool{}
	n := 0
	for _, m := range held {
		if limit > 0 && n >= limit {
			break
		}
		id := aws.ToString(m.MessageId)
		if seen[id] {
			continue
		}
		seen[id] = true
		n++
		if err := fn(hsqs.UnmarshalMessage(m)); err != nil {
			return err
		}
	}
	return nil
}

func (d *sqsDriver) count(ctx context.Context, topic, _ string) (int, error) {
	qurl, err := d.queueURL(ctx, topic)
	if err != nil {
		return 0, err
	}
	return d.approx(ctx, qurl)
}

func (d *sqsDriver) subscribed(ctx context.Context, topic string) (bool, error) {
	u, err := d.queueURL(ctx, topic)
	return u != "", err
}

func (d *sqsDriver) move(ctx context.Context, topic, _ string, limit int, next func(*message.Message) (string, *message.Message, error), done func(*message.Message, string)) (err error) {
	qurl, err := d.queueURL(ctx, topic)
	if err != nil {
		return err
	}
	n, err := d.approx(ctx, qurl)
	if err != nil {
		return err
	}
	if limit > 0 && limit < n {
		n = limit
	}
	var held, skipped []types.Message // received, not moved: given back on return
	defer func() {
		err = errors.Join(err, d.release(context.WithoutCancel(ctx), qurl, append(held, skipped...)))
	}()
	seen := map[string]bool{}
	moved := 0
	for moved < n {
		if err := ctx.Err(); err != nil {
			return err
		}
		ms, err := d.receive(ctx, qurl, n-moved)
		if err != nil {
			return err
		}
		if len(ms) == 0 {
			return nil
		}
		held = append(held, ms...)
		for len(held) > 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			m := held[0]
			dead := hsqs.UnmarshalMessage(m)
			if seen[dead.UUID] {
				// Dead-lettered anew during the move: one pass only. It
				// stays invisible until the move ends, then is given back.
				skipped = append(skipped, m)
				held = held[1:]
				continue
			}
			seen[dead.UUID] = true
			to, err := republish(d.pub, topic, dead, next)
			if err != nil {
				return err
			}
			c := context.WithoutCancel(ctx)
			held = held[1:]
			if _, err := d.client.DeleteMessage(c, &awssqs.DeleteMessageInput{QueueUrl: aws.String(qurl), ReceiptHandle: m.ReceiptHandle}); err != nil {
				return fmt.Errorf("dlq: %s was sent to %q but could not be deleted from %q (it may be moved twice): %w", dead.UUID, to, topic, err)
			}
			moved++
			done(dead, to)
		}
	}
	return nil
}
