package sqs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// ErrClosed is returned by Publish and Subscribe after Close.
var ErrClosed = errors.New("sqs: closed")

// sendAttempts is how often an entry that SQS failed with a server fault is
// sent in all.
const sendAttempts = 3

// Publisher is a Watermill [message.Publisher] that sends to SQS queues. It is
// safe for concurrent use.
type Publisher struct {
	cfg    Config
	client *sqs.Client
	queues *queues
	logger watermill.LoggerAdapter

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // in-flight Publish calls
	mu     sync.RWMutex
	closed bool
}

var _ message.Publisher = (*Publisher)(nil)

// NewPublisher returns a Publisher. ctx is used only to load the AWS
// configuration when cfg.Client is nil. logger may be nil.
func NewPublisher(ctx context.Context, cfg Config, logger watermill.LoggerAdapter) (*Publisher, error) {
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
	pctx, cancel := context.WithCancel(context.Background())
	return &Publisher{
		cfg:    cfg,
		client: client,
		queues: newQueues(client, cfg),
		logger: logger.With(watermill.LogFields{"component": "sqs.Publisher"}),
		ctx:    pctx,
		cancel: cancel,
	}, nil
}

// Publish sends msgs to the queue of topic in batches of up to 10 messages
// (SendMessageBatch). It returns when SQS has accepted every message, or with
// an error naming each message that was not sent; messages of earlier batches
// may have been sent by then. Every message is checked first: one larger than
// [Config.MaxMessageBytes] fails the call before anything is sent. The call is cancelled by the context of the
// first message (message.Message.Context) and by Close.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return ErrClosed
	}
	p.wg.Add(1)
	p.mu.RUnlock()
	defer p.wg.Done()
	if len(msgs) == 0 {
		return nil
	}

	ctx, cancel := context.WithCancel(msgs[0].Context())
	defer cancel()
	stop := context.AfterFunc(p.ctx, cancel)
	defer stop()

	// Every message is converted and checked before anything is sent, so a
	// message that cannot be sent fails the call as a whole.
	converted := make([]sqsEntry, len(msgs))
	for i, msg := range msgs {
		e, err := toSQS(msg)
		if err != nil {
			return fmt.Errorf("%w; none of the %d messages was sent", err, len(msgs))
		}
		if e.size > p.cfg.MaxMessageBytes {
			return tooLarge(msg, e, p.cfg.MaxMessageBytes, len(msgs))
		}
		converted[i] = e
	}

	q, err := p.queues.resolve(ctx, topic)
	if err != nil {
		return err
	}

	batch := make([]types.SendMessageBatchRequestEntry, 0, maxSendBatchEntries)
	batchMsgs := make([]*message.Message, 0, maxSendBatchEntries)
	batchBytes := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := p.send(ctx, topic, q, batch, batchMsgs)
		batch, batchMsgs, batchBytes = batch[:0], batchMsgs[:0], 0
		return err
	}
	for i, msg := range msgs {
		e := converted[i]
		if len(batch) == maxSendBatchEntries || batchBytes+e.size > p.cfg.MaxBatchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		entry := types.SendMessageBatchRequestEntry{
			Id:                aws.String(strconv.Itoa(len(batch))),
			MessageBody:       aws.String(e.body),
			MessageAttributes: e.attrs,
		}
		if q.fifo {
			group := msg.Metadata.Get(p.cfg.GroupIDKey)
			if group == "" {
				group = topic
			}
			entry.MessageGroupId = aws.String(messageGroupID(group))
			entry.MessageDeduplicationId = aws.String(messageGroupID(msg.UUID))
		}
		batch = append(batch, entry)
		batchMsgs = append(batchMsgs, msg)
		batchBytes += e.size
	}
	return flush()
}

// messageGroupID returns key when SQS accepts it as a MessageGroupId or
// MessageDeduplicationId (the same rule: 1 to 128 characters, letters,
// digits and ASCII punctuation), and otherwise a stable hash of it, so that
// any partition key ("John Smith", "kundé", a long one) keeps its messages
// in one group, and any message UUID deduplicates, instead of being rejected.
func messageGroupID(key string) string {
	valid := len(key) >= 1 && len(key) <= maxGroupIDLength
	for i := 0; valid && i < len(key); i++ {
		valid = key[i] >= 0x21 && key[i] <= 0x7e
	}
	if valid {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "hexeract-sha256-" + hex.EncodeToString(sum[:])
}

// maxGroupIDLength is the longest MessageGroupId SQS accepts.
const maxGroupIDLength = 128

// tooLarge is the error for a message over the size limit; n is the number
// of messages of the Publish call, none of which was sent.
func tooLarge(msg *message.Message, e sqsEntry, limit, n int) error {
	var why string
	if v, ok := e.attrs[AttrBodyEncoding]; ok && aws.ToString(v.StringValue) == base64Encoding {
		why = " (the payload is not UTF-8 text, so it is sent base64-encoded, a third larger)"
	}
	return fmt.Errorf("sqs: message %s is %d bytes with its attributes%s, over the limit of %d (Config.MaxMessageBytes, at most 1 MiB); none of the %d messages of this Publish call was sent: store large payloads elsewhere and send a reference",
		msg.UUID, e.size, why, limit, n)
}

// send sends one batch, retrying entries that failed with a server fault.
// Entries are renumbered on every attempt, so that SQS's answer (which names
// entries by Id) maps back to the entry and message actually sent. The error
// names every message that was not sent: those SQS rejected (sender fault) and
// those still failing after the last attempt.
func (p *Publisher) send(ctx context.Context, topic string, q queueRef, entries []types.SendMessageBatchRequestEntry, msgs []*message.Message) error {
	total := len(entries)
	var permanent []string
	for attempt := 1; len(entries) > 0; attempt++ {
		for i := range entries {
			entries[i].Id = aws.String(strconv.Itoa(i))
		}
		out, err := p.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.url), Entries: entries})
		if err != nil {
			if isQueueMissing(err) {
				p.queues.forget(topic)
			}
			if len(permanent) > 0 {
				return fmt.Errorf("sqs: queue %q rejected %d of %d messages: %s; and sending %d others failed: %w", q.name, len(permanent), total, strings.Join(permanent, "; "), len(entries), err)
			}
			return fmt.Errorf("sqs: send %d messages to queue %q: %w", len(entries), q.name, err)
		}
		var retry []types.SendMessageBatchRequestEntry
		var retryMsgs []*message.Message
		for _, f := range out.Failed {
			i, err := strconv.Atoi(aws.ToString(f.Id))
			if err != nil || i < 0 || i >= len(entries) {
				return fmt.Errorf("sqs: queue %q answered for unknown batch entry %q: %s", q.name, aws.ToString(f.Id), aws.ToString(f.Message))
			}
			if f.SenderFault || attempt == sendAttempts {
				permanent = append(permanent, fmt.Sprintf("message %s: %s: %s", msgs[i].UUID, aws.ToString(f.Code), aws.ToString(f.Message)))
				continue
			}
			retry = append(retry, entries[i])
			retryMsgs = append(retryMsgs, msgs[i])
		}
		if len(retry) > 0 {
			p.logger.Debug("Retrying SQS batch entries failed by the server", watermill.LogFields{"queue": q.name, "entries": len(retry), "attempt": attempt})
		}
		entries, msgs = retry, retryMsgs
	}
	if len(permanent) > 0 {
		return fmt.Errorf("sqs: queue %q rejected %d of %d messages: %s", q.name, len(permanent), total, strings.Join(permanent, "; "))
	}
	return nil
}

// Close makes later Publish calls fail with ErrClosed, cancels Publish calls
// in flight and waits for them to return. It is safe to call more than once.
func (p *Publisher) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	return nil
}
