package router

import wmmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"

// This file is the one place that names every metadata key Hexeract writes
// or reads. Other packages refer to these constants (their own Key* names
// are deprecated aliases of them), and a test (TestMetadataKeysOnlyInRouter)
// fails when non-test code outside this file uses a string literal as a
// metadata key.
//
// The naming scheme:
//
//   - CloudEvents 1.0 attributes and extensions: "ce_" + the attribute name,
//     as the CloudEvents Kafka binding spells its headers ([KeyID], [KeyType],
//     [KeyPartitionKey], [KeyCorrelationExt], ...), plus "content-type".
//   - Cross-service context that other ecosystems already name:
//     correlation_id, causation_id, and the W3C trace context keys
//     traceparent and tracestate.
//   - Everything Hexeract adds for itself: "hexeract_" + the component +
//     the field ([KeyFaultError], [KeyDueAt], [KeyCronJob], ...).
//   - Watermill's poison-queue keys, written beside Hexeract's fault keys
//     so Watermill tools understand Hexeract's dead letters.
//
// Exception, kept by the wire-compatibility policy (CHANGELOG.md): the
// request/reply keys (reply_to, request_id, request_deadline, reply_ack,
// reply_status) and the saga keys (saga_name, saga_key) were published
// before the scheme and are already on the wire between deployed services
// and non-Go peers. Renaming them would make a requester of the new version
// and a responder of the old one miss each other during a rolling deploy,
// so their wire values stay; only the Go names follow the scheme
// ([KeyReplyTo], [KeySagaName], ...). A future rename to hexeract_* would
// write both names for one minor version and read both, announced in the
// CHANGELOG.

// CloudEventsPrefix starts the metadata key of every CloudEvents attribute
// and extension ("ce_" + attribute name, the CloudEvents Kafka binding's
// header names).
const CloudEventsPrefix = "ce_"

// Envelope keys: CloudEvents 1.0 attributes, so any CloudEvents SDK can read
// and write Hexeract messages.
const (
	KeyID          = "ce_id"          // CloudEvents id; the Watermill message UUID
	KeyType        = "ce_type"        // CloudEvents type; the message's wire name
	KeySource      = "ce_source"      // CloudEvents source
	KeySpecVersion = "ce_specversion" // CloudEvents specversion, [SpecVersion]
	KeyTime        = "ce_time"        // CloudEvents time, RFC 3339
	KeySubject     = "ce_subject"     // CloudEvents subject
	KeyDataSchema  = "ce_dataschema"  // CloudEvents dataschema
	// KeyDataContentType is the CloudEvents datacontenttype attribute as a
	// header; Hexeract writes [KeyContentType] and reads this one from peers
	// (the JavaScript SDK's binary binding writes both).
	KeyDataContentType = "ce_datacontenttype"
	KeyContentType     = "content-type"    // media type of the payload
	KeyPartitionKey    = "ce_partitionkey" // CloudEvents partitioning extension; set from [Keyed]
	// KeyAssumedType is "true" on a raw message (one without a CloudEvents
	// envelope) whose type was assumed by [AssumeEnvelope].
	KeyAssumedType = "hexeract_assumed_type"
)

// Correlation, causation and trace context.
const (
	KeyCorrelationID = "correlation_id" // the conversation a message belongs to
	KeyCausationID   = "causation_id"   // the id of the message that caused this one
	KeyTraceParent   = "traceparent"    // W3C trace context
	KeyTraceState    = "tracestate"     // W3C trace context
	// KeyCorrelationExt is the metadata key of the CloudEvents extension
	// "correlationid". CloudEvents extension names are lowercase letters and
	// digits only, so an event written with a CloudEvents SDK cannot carry an
	// attribute named correlation_id; it carries the extension
	// correlationid, which the Kafka binding writes as the header
	// ce_correlationid (and the AMQP binding as cloudEvents_correlationid,
	// which adapters/amqp decodes to ce_correlationid). Hexeract reads it
	// when correlation_id is missing, and writes correlation_id.
	KeyCorrelationExt = "ce_correlationid"
)

// KeyTransportError marks a message the transport could not unmarshal (no
// id, no body, corrupt metadata): the transport's adapter hands the raw
// bytes on as the payload, with this key naming the cause, instead of
// requeueing the delivery in a loop or ending the subscription. The
// dead-letter middleware moves such a message to the dead-letter topic at
// once (no retries) with a fault naming the cause, and the handler is never
// called with it. The key is not copied into the dead letter.
const KeyTransportError = "hexeract_transport_error"

// Fault keys written on every dead letter by middleware.DeadLetter. Times
// are RFC 3339 with nanoseconds, in UTC. Values are single lines (newlines
// are replaced) so every transport's header encoding carries them.
const (
	KeyFaultError        = "hexeract_fault_error"         // error text
	KeyFaultType         = "hexeract_fault_type"          // Go type of the error, or "panic"
	KeyFaultPermanent    = "hexeract_fault_permanent"     // "true" when the error was permanent
	KeyFaultHandler      = "hexeract_fault_handler"       // Watermill handler name
	KeyFaultTopic        = "hexeract_fault_topic"         // topic the message was consumed from
	KeyFaultAttempts     = "hexeract_fault_attempts"      // handler calls made, first one included (see middleware.CountCalls)
	KeyFaultFirstFailure = "hexeract_fault_first_failure" // time of the first failed attempt
	KeyFaultLastFailure  = "hexeract_fault_last_failure"  // time of the last failed attempt
	KeyFaultStack        = "hexeract_fault_stack"         // truncated stack, panics only; frames separated by " | "
	KeyFaultGeneratedID  = "hexeract_fault_generated_id"  // "true" when the message had no id and the dead letter's UUID was generated

	// FaultKeyPrefix starts every fault key. Moving a dead letter back to
	// its topic removes the keys with this prefix and Watermill's
	// poison-queue keys.
	FaultKeyPrefix = "hexeract_fault_"
)

// Watermill's poison-queue metadata keys, also written on every dead letter
// so Watermill tools that read its PoisonQueue understand Hexeract's dead
// letters, and read from dead letters Watermill's PoisonQueue wrote.
const (
	KeyPoisonReason     = wmmiddleware.ReasonForPoisonedKey  // "reason_poisoned": error text
	KeyPoisonTopic      = wmmiddleware.PoisonedTopicKey      // "topic_poisoned": original topic
	KeyPoisonHandler    = wmmiddleware.PoisonedHandlerKey    // "handler_poisoned"
	KeyPoisonSubscriber = wmmiddleware.PoisonedSubscriberKey // "subscriber_poisoned"
)

// Dead-letter store keys (package deadletter).
const (
	// KeyDeadLetterRetries is set on a message an operator retried from the
	// dead-letter store: how many times it was retried (1 for the first
	// retry). A retried message that fails again is stored as a new dead
	// letter of the same message id with this count, never retried again
	// by the same operation.
	KeyDeadLetterRetries = "hexeract_deadletter_retries"
)

// Scheduler keys (package scheduler).
const (
	// KeyDueAt is set on every message the scheduler hands off: the time
	// (RFC 3339, UTC) the message was due.
	KeyDueAt = "hexeract_due_at"
	// KeyCronJob is the name of the cron job that produced a message.
	KeyCronJob = "hexeract_cron_job"
	// KeyCronTick is the tick time of a cron job's message, RFC 3339 UTC.
	KeyCronTick = "hexeract_cron_tick"
	// KeyRedeliveries is the number of times scheduler.Redelivery has
	// rescheduled the message after a failure.
	KeyRedeliveries = "hexeract_redeliveries"
	// KeyRedeliveryHistory is the JSON array of fault records (see
	// middleware.Fault), one per failed round of immediate attempts, oldest
	// first, written by scheduler.Redelivery. It does not start with
	// [FaultKeyPrefix], so a dead letter keeps it.
	KeyRedeliveryHistory = "hexeract_redelivery_history"
	// KeyScheduleRefusals counts the hand-offs the scheduler's sink refused
	// for a scheduled message; kept in the scheduler's table only and
	// removed before the message is handed off.
	KeyScheduleRefusals = "hexeract_schedule_refusals"
	// KeyScheduleLastError is the last error of a refused hand-off; kept in
	// the scheduler's table only and removed before the message is handed
	// off.
	KeyScheduleLastError = "hexeract_schedule_last_error"
	// KeyMetadataError is set on a scheduled message whose stored metadata
	// could not be decoded: the decoding error, in place of the metadata.
	KeyMetadataError = "hexeract_metadata_error"
)

// Request/reply keys (package reqreply). Their wire values predate the
// naming scheme and are kept (see the top of this file). The request id is
// the ce_id of the request; it is kept apart from the correlation id, which
// follows the whole conversation.
const (
	// KeyReplyTo is the topic the responder publishes the reply on (request).
	KeyReplyTo = "reply_to"
	// KeyRequestID is the id of the request a message answers (request and reply).
	KeyRequestID = "request_id"
	// KeyRequestDeadline is the time the caller stops waiting, RFC 3339 with
	// nanoseconds, UTC (request). A responder skips a request whose deadline
	// passed.
	KeyRequestDeadline = "request_deadline"
	// KeyReplyAck asks the responder to confirm receipt at once ("1")
	// (request); set by reqreply.NoResponderTimeout.
	KeyReplyAck = "reply_ack"
	// KeyReplyStatus is "ok", "error" or "accepted" (reply).
	KeyReplyStatus = "reply_status"
	// KeyReplyVia names the reply channel of the caller's transport its
	// reply topic lives on (request), for example "amqp.direct" (an
	// exclusive queue reached through RabbitMQ's default exchange) or
	// "nats.core" (a core NATS subject); absent when the reply topic is an
	// ordinary topic of the App's transport. A responder whose transport
	// offers the same channel replies through it (reqreply.ReplyTransport).
	// Added after the naming scheme, so it follows it.
	KeyReplyVia = "hexeract_reply_via"
)

// Saga keys (package saga), set on every message a saga sends so consumers,
// dead letters and traces can tell which instance sent it. Their wire values
// predate the naming scheme and are kept (see the top of this file).
const (
	KeySagaName = "saga_name" // the saga's name
	KeySagaKey  = "saga_key"  // the instance's key
)
