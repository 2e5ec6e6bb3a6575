package sqs

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Receive errors are retried with a backoff between these bounds.
const (
	minReceiveBackoff = 100 * time.Millisecond
	maxReceiveBackoff = 5 * time.Second
)

// Subscriber is a Watermill [message.Subscriber] that long-polls SQS queues.
// It is safe for concurrent use; each Subscribe call has its own receive
// loops ([Config.Pollers]) and output channel.
type Subscriber struct {
	cfg    Config
	client *sqs.Client
	queues *queues
	logger watermill.LoggerAdapter

	closing chan struct{}
	mu      sync.Mutex
	closed  bool
	wg      sync.WaitGroup // running subscriptions
}

var (
	_ message.Subscriber           = (*Subscriber)(nil)
	_ message.SubscribeInitializer = (*Subscriber)(nil)
)

// NewSubscriber returns a Subscriber. ctx is used only to load the AWS
// configuration when cfg.Client is nil. logger may be nil.
func NewSubscriber(ctx context.Context, cfg Config, logger watermill.LoggerAdapter) (*Subscriber, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	client, err := cfg.client(ctx)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	return &Subscriber{
		cfg:     cfg,
		client:  client,
		queues:  newQueues(client, cfg),
		logger:  logger.With(watermill.LogFields{"component": "sqs.Subscriber"}),
		closing: make(chan struct{}),
	}, nil
}

// SubscribeInitialize resolves the queue of topic, creating it unless
// [Config.DisableQueueCreation] is set. Subscribe does the same.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	_, err := s.queues.resolve(context.Background(), topic)
	return err
}

// Subscribe starts receiving from the queue of topic and returns the channel
// of messages. Each message must be acknowledged (deleted from the queue) or
// nacked (made visible again at once) before the next one is sent on the
// channel by the same poller. The channel is closed, after the receive loops
// stopped and the messages they held were made visible again, when ctx is
// cancelled or the Subscriber is closed.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()

	q, err := s.queues.resolve(ctx, topic)
	if err != nil {
		s.wg.Done()
		return nil, err
	}

	subCtx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-subCtx.Done():
		}
	}()

	out := make(chan *message.Message)
	logger := s.logger.With(watermill.LogFields{"topic": topic, "queue": q.name})
	var pollers sync.WaitGroup
	for range s.cfg.Pollers {
		pollers.Add(1)
		go func() {
			defer pollers.Done()
			p := &poller{s: s, topic: topic, queue: q, out: out, logger: logger}
			p.run(subCtx)
		}()
	}
	go func() {
		pollers.Wait()
		cancel()
		close(out)
		logger.Debug("SQS subscription stopped", nil)
		s.wg.Done()
	}()
	return out, nil
}

// Close stops every subscription, waits until their channels are closed and
// the messages they held were made visible again, and makes later Subscribe
// calls fail with ErrClosed. It is safe to call more than once.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// poller is one receive loop of a subscription.
type poller struct {
	s      *Subscriber
	topic  string
	queue  queueRef
	out    chan<- *message.Message
	logger watermill.LoggerAdapter
}

// run receives until ctx is done.
func (p *poller) run(ctx context.Context) {
	cfg := p.s.cfg
	backoff := minReceiveBackoff
	for ctx.Err() == nil {
		res, err := p.s.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:              aws.String(p.queue.url),
			MaxNumberOfMessages:   int32(cfg.MaxMessages),
			WaitTimeSeconds:       cfg.waitSeconds(),
			VisibilityTimeout:     int32(cfg.VisibilityTimeout / time.Second),
			MessageAttributeNames: []string{"All"},
		})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.logger.Error("Cannot receive from SQS, retrying", err, watermill.LogFields{"backoff": backoff.String()})
			if isQueueMissing(err) {
				p.s.queues.forget(p.topic)
				if q, rerr := p.s.queues.resolve(ctx, p.topic); rerr == nil {
					p.queue = q
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, maxReceiveBackoff)
			continue
		}
		backoff = minReceiveBackoff
		if len(res.Messages) > 0 {
			p.handle(ctx, res.Messages, time.Now())
		}
	}
}

// handle hands out one received batch, message by message, and deletes the
// acknowledged ones. Messages still held when their visibility timeout is
// about to run out are not handed out: SQS makes them visible again and may
// already have delivered them to another consumer, so handing them out here
// would have two consumers handle the same message at once.
func (p *poller) handle(ctx context.Context, msgs []types.Message, receivedAt time.Time) {
	vis := p.s.cfg.VisibilityTimeout
	flushAt := receivedAt.Add(vis / 2)
	// SQS started the visibility timeout a little before the answer reached
	// us: keep a margin.
	expiresAt := receivedAt.Add(vis - vis/10)
	acked := make([]types.Message, 0, len(msgs))
	for i, m := range msgs {
		if time.Now().After(expiresAt) {
			p.logger.Info("Visibility timeout of received messages ran out before they were handed out; SQS delivers them again (raise the visibility timeout or lower max_messages)",
				watermill.LogFields{"messages": len(msgs) - i, "visibility": vis.String()})
			break
		}
		ack, stop := p.deliver(ctx, m)
		if ack {
			acked = append(acked, m)
			if time.Now().After(flushAt) {
				p.delete(ctx, acked)
				acked = acked[:0]
			}
		}
		if stop {
			rest := msgs[i+1:]
			if !ack {
				rest = msgs[i:]
			}
			p.release(ctx, rest)
			break
		}
	}
	p.delete(ctx, acked)
}

// deliver sends one message on the output channel and waits for its ack or
// nack. stop reports that the subscription is stopping.
func (p *poller) deliver(ctx context.Context, m types.Message) (ack, stop bool) {
	msg := fromSQS(m)
	msgCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	msg.SetContext(msgCtx)

	select {
	case p.out <- msg:
	case <-ctx.Done():
		return false, true
	}
	select {
	case <-msg.Acked():
		return true, false
	case <-msg.Nacked():
		p.changeVisibility(ctx, []types.Message{m})
		return false, false
	case <-ctx.Done():
		select {
		case <-msg.Acked():
			return true, true
		default:
			return false, true
		}
	}
}

// cleanupCtx returns a context for calls that must run even while the
// subscription stops: deleting acknowledged messages and releasing held ones.
func (p *poller) cleanupCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), p.s.cfg.CleanupTimeout)
}

// delete deletes acknowledged messages in batches of up to 10.
func (p *poller) delete(ctx context.Context, msgs []types.Message) {
	if len(msgs) == 0 {
		return
	}
	cctx, cancel := p.cleanupCtx(ctx)
	defer cancel()
	entries := make([]types.DeleteMessageBatchRequestEntry, 0, min(len(msgs), maxSendBatchEntries))
	for start := 0; start < len(msgs); start += maxSendBatchEntries {
		entries = entries[:0]
		for i, m := range msgs[start:min(start+maxSendBatchEntries, len(msgs))] {
			entries = append(entries, types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
		}
		var err error
		if len(entries) == 1 {
			_, err = p.s.client.DeleteMessage(cctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(p.queue.url), ReceiptHandle: entries[0].ReceiptHandle})
		} else {
			var out *sqs.DeleteMessageBatchOutput
			out, err = p.s.client.DeleteMessageBatch(cctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(p.queue.url), Entries: entries})
			if err == nil && len(out.Failed) > 0 {
				p.logger.Error("SQS did not delete acknowledged messages; they will be redelivered", nil,
					watermill.LogFields{"failed": len(out.Failed), "code": aws.ToString(out.Failed[0].Code), "reason": aws.ToString(out.Failed[0].Message)})
			}
		}
		if err != nil {
			p.logger.Error("Cannot delete acknowledged messages from SQS; they will be redelivered", err, watermill.LogFields{"messages": len(entries)})
		}
	}
}

// release makes held messages visible again at once.
func (p *poller) release(ctx context.Context, msgs []types.Message) {
	if len(msgs) > 0 {
		p.changeVisibility(ctx, msgs)
	}
}

// changeVisibility sets the visibility timeout of msgs to 0, so SQS delivers
// them again at once.
func (p *poller) changeVisibility(ctx context.Context, msgs []types.Message) {
	cctx, cancel := p.cleanupCtx(ctx)
	defer cancel()
	if len(msgs) == 1 {
		_, err := p.s.client.ChangeMessageVisibility(cctx, &sqs.ChangeMessageVisibilityInput{
			QueueUrl: aws.String(p.queue.url), ReceiptHandle: msgs[0].ReceiptHandle, VisibilityTimeout: 0,
		})
		if err != nil {
			p.logger.Error("Cannot make a message visible again; SQS redelivers it after the visibility timeout", err, nil)
		}
		return
	}
	entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, 0, maxSendBatchEntries)
	for start := 0; start < len(msgs); start += maxSendBatchEntries {
		entries = entries[:0]
		for i, m := range msgs[start:min(start+maxSendBatchEntries, len(msgs))] {
			entries = append(entries, types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0})
		}
		out, err := p.s.client.ChangeMessageVisibilityBatch(cctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(p.queue.url), Entries: entries})
		if err == nil && len(out.Failed) > 0 {
			p.logger.Error("SQS did not make held messages visible again; it redelivers them after the visibility timeout", nil,
				watermill.LogFields{"failed": len(out.Failed), "code": aws.ToString(out.Failed[0].Code)})
		}
		if err != nil {
			p.logger.Error("Cannot make held messages visible again; SQS redelivers them after the visibility timeout", err, watermill.LogFields{"messages": len(entries)})
		}
	}
}
