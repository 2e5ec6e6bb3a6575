package sqs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// queues resolves topics to queue URLs, creating queues when allowed, and
// caches the result.
type queues struct {
	client  *sqs.Client
	cfg     Config
	mu      sync.RWMutex
	byTopic map[string]queueRef
}

// queueRef is a resolved queue.
type queueRef struct {
	name string
	url  string
	fifo bool
}

func newQueues(client *sqs.Client, cfg Config) *queues {
	return &queues{client: client, cfg: cfg, byTopic: make(map[string]queueRef)}
}

// resolve returns the queue of topic.
func (q *queues) resolve(ctx context.Context, topic string) (queueRef, error) {
	q.mu.RLock()
	ref, ok := q.byTopic[topic]
	q.mu.RUnlock()
	if ok {
		return ref, nil
	}
	name, err := q.cfg.QueueNameFunc(topic)
	if err != nil {
		return queueRef{}, err
	}
	if !validQueueName(name) {
		return queueRef{}, fmt.Errorf("sqs: QueueNameFunc mapped topic %q to %q, which is not a valid SQS queue name (1 to 80 characters of A-Z a-z 0-9 - _, optional .fifo suffix)", topic, name)
	}
	ref = queueRef{name: name, fifo: strings.HasSuffix(name, ".fifo")}
	out, err := q.client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	switch {
	case err == nil:
		ref.url = aws.ToString(out.QueueUrl)
	case isQueueMissing(err) && !q.cfg.DisableQueueCreation:
		if ref.url, err = q.create(ctx, ref); err != nil {
			return queueRef{}, err
		}
	case isQueueMissing(err):
		return queueRef{}, fmt.Errorf("sqs: queue %q of topic %q does not exist and Config.DisableQueueCreation is set: create it first", name, topic)
	default:
		return queueRef{}, fmt.Errorf("sqs: get URL of queue %q (topic %q): %w", name, topic, err)
	}
	q.mu.Lock()
	q.byTopic[topic] = ref
	q.mu.Unlock()
	return ref, nil
}

func (q *queues) create(ctx context.Context, ref queueRef) (string, error) {
	attrs := maps.Clone(q.cfg.QueueAttributes)
	if ref.fifo {
		if attrs == nil {
			attrs = make(map[string]string, 1)
		}
		attrs[string(types.QueueAttributeNameFifoQueue)] = "true"
	}
	out, err := q.client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(ref.name), Attributes: attrs})
	if err != nil {
		var exists *types.QueueNameExists
		if errors.As(err, &exists) { // created meanwhile with other attributes
			got, gerr := q.client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(ref.name)})
			if gerr == nil {
				return aws.ToString(got.QueueUrl), nil
			}
		}
		return "", fmt.Errorf("sqs: create queue %q: %w", ref.name, err)
	}
	return aws.ToString(out.QueueUrl), nil
}

// forget drops a cached topic, e.g. after its queue was deleted.
func (q *queues) forget(topic string) {
	q.mu.Lock()
	delete(q.byTopic, topic)
	q.mu.Unlock()
}

func isQueueMissing(err error) bool {
	var missing *types.QueueDoesNotExist
	return errors.As(err, &missing)
}
