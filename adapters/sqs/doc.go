// Package sqs is a Watermill transport for Amazon SQS, written on the AWS SDK
// for Go v2 because no Watermill SQS transport is served by the module proxy.
//
// [Publisher] and [Subscriber] implement Watermill's [message.Publisher] and
// [message.Subscriber], so they plug into a plain Watermill router, into
// Hexeract, and into every Watermill middleware unchanged.
//
// # Topics and queues
//
// A topic maps to one SQS queue. The queue name is derived from the topic by
// [Config.QueueNameFunc] (by default [DefaultQueueName]: characters that SQS
// does not allow, such as the dot in "users.registered", become "-"). Queue
// URLs are resolved once with GetQueueUrl and cached. Unless
// [Config.DisableQueueCreation] is set, a missing queue is created with
// CreateQueue (with [Config.QueueAttributes]; a name ending in ".fifo"
// creates a FIFO queue).
//
// Every subscriber of a topic reads the same queue, so subscribers compete
// for messages: SQS has no consumer groups (fan out with SNS, or give each
// consumer group its own topic).
//
// # Delivery
//
// Delivery is at-least-once. The subscriber long-polls (ReceiveMessage with
// [Config.WaitTime]) for up to [Config.MaxMessages] messages and hands them
// out one at a time on the subscription's channel, each after the previous
// one was acknowledged, like Watermill's other transports.
//
//   - Ack deletes the message. Deletes are batched (DeleteMessageBatch) per
//     received batch, and flushed early when half of the visibility timeout
//     has passed.
//   - Nack makes the message visible again at once (ChangeMessageVisibility
//     to 0), so it is redelivered immediately.
//   - A message neither acked nor nacked within [Config.VisibilityTimeout]
//     becomes visible again and is redelivered. The timeout of every message
//     of a batch starts at the receive: a message whose timeout is about to
//     run out (90% of it) before its turn comes is not handed out, because
//     another consumer may already have it; SQS delivers it again. When a subscription stops
//     (its context is cancelled or the subscriber is closed), the messages it
//     holds but has not handed out or had acknowledged are made visible again
//     at once.
//   - Standard queues do not keep order; FIFO queues keep order within a
//     message group (see [Config.GroupIDKey]).
//
// # Message mapping
//
// The payload becomes the SQS message body. A payload that is not text that
// SQS accepts (valid UTF-8 without control characters other than tab, CR and
// LF) is sent base64-encoded and flagged with the "hexeract.body-encoding"
// attribute; the subscriber decodes it back, so any bytes round-trip.
//
// The Watermill message UUID travels in the "hexeract.uuid" message attribute.
// Watermill metadata travels as SQS message attributes of type String, one
// attribute per metadata key. SQS allows at most 10 message attributes per
// message, and attribute names and values have rules of their own (names of
// at most 256 characters of A-Z a-z 0-9 _ - . that do not start with "AWS."
// or "Amazon."; values not empty). When the metadata does not fit (too many
// keys, or a key or value that SQS would reject), the first keys that fit are
// sent as attributes (traceparent and tracestate first, then Hexeract's
// envelope keys, then the others by name) and all the others are packed as a
// JSON object into a single "hexeract.metadata" attribute. The subscriber
// unpacks it, so every metadata key and value round-trips, while consumers in
// other languages still see the common keys as plain attributes. Attribute
// names starting with "hexeract." are reserved for this mapping.
//
// Messages sent by producers that are not Watermill (no "hexeract.uuid"
// attribute) are delivered with the SQS MessageId as UUID and every String or
// Number attribute as metadata.
//
// # Publishing
//
// Publish sends messages with SendMessageBatch, up to 10 per call and at most
// [Config.MaxBatchBytes] per call. Every message is checked before anything
// is sent: a message larger than [Config.MaxMessageBytes] fails the whole
// call with an error naming it and its size, and nothing of the call is sent. Entries that SQS fails with a server-side fault are retried; Publish
// returns an error naming the UUID of every message that could not be sent.
//
// # Configuration
//
// [Config] documents every option and its default; [ParseURL] and [Open] build
// one from a URL such as
//
//	sqs://us-east-1/?endpoint=http://127.0.0.1:4566
//
// Credentials come from the AWS default chain (environment, shared files,
// IAM role), or from the URL's user info (sqs://KEY_ID:SECRET@region/);
// they never appear in errors or logs.
package sqs
