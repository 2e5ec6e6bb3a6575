package sqs

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/hexeract/hexeract/router"
)

// Defaults applied by [Config.SetDefaults] to zero fields.
const (
	// DefaultWaitTime is the default long-polling wait of ReceiveMessage.
	DefaultWaitTime = 20 * time.Second
	// DefaultVisibilityTimeout is the default time a received message stays
	// hidden from other consumers before it is redelivered.
	DefaultVisibilityTimeout = 30 * time.Second
	// DefaultMaxMessages is the default number of messages asked for by one
	// ReceiveMessage call (the SQS maximum).
	DefaultMaxMessages = 10
	// DefaultMaxMessageBytes is the default size limit of one message
	// (body plus attributes): 256 KiB, the limit of SQS queues created with
	// default attributes and of most emulators.
	DefaultMaxMessageBytes = 256 * 1024
	// DefaultMaxBatchBytes is the default size limit of one SendMessageBatch
	// call (all entries together).
	DefaultMaxBatchBytes = 256 * 1024
	// DefaultGroupIDKey is the default metadata key whose value becomes the
	// MessageGroupId on FIFO queues: Hexeract's partition key.
	DefaultGroupIDKey = router.KeyPartitionKey
	// DefaultCleanupTimeout bounds the calls made while a subscription stops
	// (flushing deletes, making held messages visible again).
	DefaultCleanupTimeout = 5 * time.Second
)

// SQS limits the configuration is validated against.
const (
	maxWaitTime          = 20 * time.Second
	maxVisibilityTimeout = 12 * time.Hour
	maxReceiveMessages   = 10
	maxSendBatchEntries  = 10
	sqsMaxMessageBytes   = 1024 * 1024
	maxQueueNameLength   = 80
)

// Config configures a [Publisher] and a [Subscriber]. Zero fields take the
// defaults documented on each field; [Config.Validate] reports values SQS
// would reject.
type Config struct {
	// Client is the SQS client to use. When nil, NewPublisher and
	// NewSubscriber build one from Region, Endpoint and Credentials with the
	// AWS default configuration chain.
	Client *sqs.Client

	// Region is the AWS region, e.g. "eu-west-1". Empty means the region of
	// the default chain (AWS_REGION, shared config). Ignored when Client is set.
	Region string

	// Endpoint overrides the SQS endpoint, e.g. "http://127.0.0.1:4566" for
	// an emulator. Empty means the regular AWS endpoint. Ignored when Client
	// is set.
	Endpoint string

	// Credentials overrides the default credential chain. Nil means the
	// default chain (environment, shared files, IAM role). Ignored when
	// Client is set. [StaticCredentials] builds one that never prints its
	// secret.
	Credentials aws.CredentialsProvider

	// QueueNameFunc maps a topic to a queue name. Default: [DefaultQueueName].
	QueueNameFunc func(topic string) (string, error)

	// DisableQueueCreation makes a missing queue an error instead of
	// creating it with CreateQueue.
	DisableQueueCreation bool

	// QueueAttributes are passed to CreateQueue when a queue is created,
	// e.g. {"MessageRetentionPeriod": "86400"}. FifoQueue=true is added for
	// names ending in ".fifo".
	QueueAttributes map[string]string

	// WaitTime is the long-polling wait of each ReceiveMessage call, in whole
	// seconds from 0 to 20. Default: 20s. Use [NoWait] for short polling.
	WaitTime time.Duration

	// VisibilityTimeout is how long a received message stays hidden from
	// other consumers; a message not acknowledged within it is redelivered.
	// Whole seconds from 1s to 12h. Default: 30s.
	VisibilityTimeout time.Duration

	// MaxMessages is the number of messages asked for by one ReceiveMessage
	// call, 1 to 10. Default: 10.
	MaxMessages int

	// Pollers is the number of concurrent receive loops of one Subscribe
	// call. More pollers overlap receiving with handling. Default: 1.
	Pollers int

	// MaxMessageBytes is the size limit of one message (body plus
	// attributes) enforced before sending. Default: 256 KiB; at most 1 MiB,
	// the SQS maximum (raise the queue's MaximumMessageSize to match).
	MaxMessageBytes int

	// MaxBatchBytes is the size limit of one SendMessageBatch call.
	// Default: 256 KiB; at most 1 MiB.
	MaxBatchBytes int

	// GroupIDKey is the metadata key whose value becomes the MessageGroupId
	// when publishing to a FIFO queue; messages without it use the topic as
	// group. A value SQS does not accept as a MessageGroupId (1 to 128
	// printable ASCII characters, no spaces) is replaced by a hash of it.
	// The message UUID is the MessageDeduplicationId (hashed the same way
	// when SQS would not accept it).
	// Default: [DefaultGroupIDKey].
	GroupIDKey string

	// CleanupTimeout bounds the SQS calls made while a subscription stops.
	// Default: 5s.
	CleanupTimeout time.Duration
}

// NoWait, as [Config.WaitTime], selects short polling (WaitTimeSeconds=0).
const NoWait time.Duration = -1

// SetDefaults fills the zero fields of c with the documented defaults.
func (c *Config) SetDefaults() {
	if c.QueueNameFunc == nil {
		c.QueueNameFunc = DefaultQueueName
	}
	if c.WaitTime == 0 {
		c.WaitTime = DefaultWaitTime
	}
	if c.VisibilityTimeout == 0 {
		c.VisibilityTimeout = DefaultVisibilityTimeout
	}
	if c.MaxMessages == 0 {
		c.MaxMessages = DefaultMaxMessages
	}
	if c.Pollers == 0 {
		c.Pollers = 1
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.GroupIDKey == "" {
		c.GroupIDKey = DefaultGroupIDKey
	}
	if c.CleanupTimeout == 0 {
		c.CleanupTimeout = DefaultCleanupTimeout
	}
}

// Validate reports every field SQS would reject, with what to change. Call it
// after [Config.SetDefaults]; the constructors do both.
func (c Config) Validate() error {
	var errs []error
	if c.WaitTime != NoWait && (c.WaitTime < 0 || c.WaitTime > maxWaitTime || c.WaitTime%time.Second != 0) {
		errs = append(errs, fmt.Errorf("WaitTime %s: must be whole seconds from 0s to 20s (or sqs.NoWait)", c.WaitTime))
	}
	if c.VisibilityTimeout < time.Second || c.VisibilityTimeout > maxVisibilityTimeout || c.VisibilityTimeout%time.Second != 0 {
		errs = append(errs, fmt.Errorf("VisibilityTimeout %s: must be whole seconds from 1s to 12h", c.VisibilityTimeout))
	}
	if c.MaxMessages < 1 || c.MaxMessages > maxReceiveMessages {
		errs = append(errs, fmt.Errorf("MaxMessages %d: must be from 1 to 10", c.MaxMessages))
	}
	if c.Pollers < 1 {
		errs = append(errs, fmt.Errorf("Pollers %d: must be at least 1", c.Pollers)) //nolint:staticcheck // ST1005: "Pollers" is the Config field it names
	}
	if c.MaxMessageBytes < 1024 || c.MaxMessageBytes > sqsMaxMessageBytes {
		errs = append(errs, fmt.Errorf("MaxMessageBytes %d: must be from 1024 to 1048576", c.MaxMessageBytes))
	}
	if c.MaxBatchBytes < c.MaxMessageBytes || c.MaxBatchBytes > sqsMaxMessageBytes {
		errs = append(errs, fmt.Errorf("MaxBatchBytes %d: must be from MaxMessageBytes (%d) to 1048576", c.MaxBatchBytes, c.MaxMessageBytes))
	}
	if c.CleanupTimeout < 0 {
		errs = append(errs, fmt.Errorf("CleanupTimeout %s: must not be negative", c.CleanupTimeout))
	}
	if c.Client == nil && c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			errs = append(errs, errors.New("Endpoint: must be an http:// or https:// URL with a host and no user info, e.g. http://127.0.0.1:4566")) //nolint:staticcheck // ST1005: "Endpoint" is the Config field it names
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("sqs: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// waitSeconds returns the WaitTimeSeconds to send.
func (c Config) waitSeconds() int32 {
	if c.WaitTime == NoWait {
		return 0
	}
	return int32(c.WaitTime / time.Second)
}

// client returns c.Client or builds one from the default chain.
func (c Config) client(ctx context.Context) (*sqs.Client, error) {
	if c.Client != nil {
		return c.Client, nil
	}
	var opts []func(*awsconfig.LoadOptions) error
	if c.Region != "" {
		opts = append(opts, awsconfig.WithRegion(c.Region))
	}
	if c.Credentials != nil {
		opts = append(opts, awsconfig.WithCredentialsProvider(c.Credentials))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("sqs: load AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, errors.New("sqs: no AWS region: set Config.Region, the URL host (sqs://eu-west-1/) or AWS_REGION")
	}
	endpoint := c.Endpoint
	return sqs.NewFromConfig(awsCfg, func(o *sqs.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	}), nil
}

// DefaultQueueName maps a topic to a valid SQS queue name: every character
// other than A-Z a-z 0-9 _ - becomes "-", except a trailing ".fifo", which is
// kept and selects a FIFO queue. So "users.registered" maps to
// "users-registered". A topic that is empty or longer than 80 characters is an
// error, because truncating it could make two topics share a queue.
func DefaultQueueName(topic string) (string, error) {
	base, suffix := topic, ""
	if strings.HasSuffix(topic, ".fifo") {
		base, suffix = strings.TrimSuffix(topic, ".fifo"), ".fifo"
	}
	if base == "" || len(base)+len(suffix) > maxQueueNameLength {
		return "", fmt.Errorf("sqs: topic %q cannot name an SQS queue: a queue name has 1 to 80 characters; set Config.QueueNameFunc to map long topics", topic)
	}
	b := []byte(base)
	for i, ch := range b {
		if !isQueueNameChar(ch) {
			b[i] = '-'
		}
	}
	return string(b) + suffix, nil
}

func isQueueNameChar(ch byte) bool {
	return ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_'
}

// validQueueName reports whether name is a valid SQS queue name.
func validQueueName(name string) bool {
	base := strings.TrimSuffix(name, ".fifo")
	if base == "" || len(name) > maxQueueNameLength {
		return false
	}
	for i := 0; i < len(base); i++ {
		if !isQueueNameChar(base[i]) {
			return false
		}
	}
	return true
}
