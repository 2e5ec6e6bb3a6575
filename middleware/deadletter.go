package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	wmmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"go.opentelemetry.io/otel/trace"

	"github.com/hexeract/hexeract/router"
)

// Fault metadata keys written on every dead letter; they are defined in
// package router (router/keys.go), with every other metadata key.
const (
	// Deprecated: use router.KeyFaultError.
	KeyFaultError = router.KeyFaultError
	// Deprecated: use router.KeyFaultType.
	KeyFaultType = router.KeyFaultType
	// Deprecated: use router.KeyFaultPermanent.
	KeyFaultPermanent = router.KeyFaultPermanent
	// Deprecated: use router.KeyFaultHandler.
	KeyFaultHandler = router.KeyFaultHandler
	// Deprecated: use router.KeyFaultTopic.
	KeyFaultTopic = router.KeyFaultTopic
	// Deprecated: use router.KeyFaultAttempts.
	KeyFaultAttempts = router.KeyFaultAttempts
	// Deprecated: use router.KeyFaultFirstFailure.
	KeyFaultFirstFailure = router.KeyFaultFirstFailure
	// Deprecated: use router.KeyFaultLastFailure.
	KeyFaultLastFailure = router.KeyFaultLastFailure
	// Deprecated: use router.KeyFaultStack.
	KeyFaultStack = router.KeyFaultStack
	// Deprecated: use router.KeyFaultGeneratedID.
	KeyFaultGeneratedID = router.KeyFaultGeneratedID
	// Deprecated: use router.FaultKeyPrefix.
	FaultKeyPrefix = router.FaultKeyPrefix
)

// Watermill's poison-queue metadata keys; see router.KeyPoisonReason.
const (
	// Deprecated: use router.KeyPoisonReason.
	KeyPoisonReason = router.KeyPoisonReason
	// Deprecated: use router.KeyPoisonTopic.
	KeyPoisonTopic = router.KeyPoisonTopic
	// Deprecated: use router.KeyPoisonHandler.
	KeyPoisonHandler = router.KeyPoisonHandler
	// Deprecated: use router.KeyPoisonSubscriber.
	KeyPoisonSubscriber = router.KeyPoisonSubscriber
)

// DefaultDLQSuffix is appended to the original topic to name its dead-letter
// topic.
const DefaultDLQSuffix = ".dlq"

// Default truncation limits of fault values.
const (
	DefaultMaxErrorLength = 2048
	DefaultMaxStackLength = 4096
)

// DeadLetterOptions configure [DeadLetter]. The zero value is usable.
type DeadLetterOptions struct {
	// Topic maps the original topic to its dead-letter topic; nil means
	// DLQTopic (topic + ".dlq").
	Topic func(topic string) string
	// IsSecret reports metadata keys that must not be copied into dead
	// letters; nil means DefaultIsSecret.
	IsSecret func(key string) bool
	// SecretKeys are more metadata keys (compared without case) that are
	// never copied, on top of IsSecret.
	SecretKeys []string
	// ShouldDeadLetter, when set, decides which final errors go to the
	// dead-letter topic; the others are returned (the message is nacked and
	// the transport redelivers it). nil dead-letters every final error.
	// A message the transport could not unmarshal (router.KeyTransportError)
	// is dead-lettered whatever it says.
	ShouldDeadLetter func(err error) bool
	// MaxErrorLength and MaxStackLength truncate the error text and the
	// panic stack; 0 means DefaultMaxErrorLength and DefaultMaxStackLength.
	MaxErrorLength int
	MaxStackLength int
	// Initialize, when set, is called once per dead-letter topic, before
	// the handler sees its first message, so the topic exists where the
	// transport needs it: on RabbitMQ a message published to an exchange no
	// queue is bound to is dropped, so pass the subscriber's
	// SubscribeInitialize there (hexeract.New does when its subscriber has
	// one). A failure does not hold messages back: it is tried again before
	// each dead letter until it succeeds, and a message that must be
	// dead-lettered while it still fails is nacked.
	Initialize func(topic string) error
	// FailureDelay is how long the handler waits before it returns (and
	// the router nacks the message) when the dead letter cannot be
	// published or its topic cannot be initialized: 0 means
	// DefaultFailureDelay, a negative value nacks at once. The delay
	// doubles with each consecutive failure of the handler's dead letters,
	// up to MaxFailureDelay, and starts again after one succeeds, so a
	// dead-letter topic that cannot be written never turns into an
	// immediate redelivery loop. The wait ends at once when the message
	// context is cancelled (the router is closing).
	FailureDelay time.Duration
	// MaxFailureDelay caps FailureDelay; 0 means DefaultMaxFailureDelay.
	MaxFailureDelay time.Duration
	// Logger, when set, logs each dead letter at Error level.
	Logger *slog.Logger
	// Store, when set, keeps dead letters in a database table (see package
	// github.com/hexeract/hexeract/deadletter) instead of publishing them
	// to the dead-letter topic: the message is written to the table first
	// and acknowledged only then; a write that fails nacks it (after
	// FailureDelay), so the transport redelivers it and nothing is lost.
	// The publisher and Topic and Initialize are not used then.
	Store DeadLetterStore
	// Group is the consumer group recorded with each stored dead letter
	// (the App sets its group); used with Store only.
	Group string
}

// DeadLetterRecord is a dead letter as [DeadLetterOptions.Store] receives
// it.
type DeadLetterRecord struct {
	// Message holds the failed message's UUID, payload and metadata,
	// without the fault keys and the keys that look secret.
	Message *message.Message
	// Fault describes the failure; Fault.Topic is the topic the message
	// was consumed from and Fault.Handler the handler that failed.
	Fault Fault
	// Group is DeadLetterOptions.Group.
	Group string
}

// DeadLetterStore keeps dead letters in a database (deadletter.Store is
// one). Write returns once the dead letter is durably stored: the
// middleware acknowledges the message only after that.
type DeadLetterStore interface {
	Write(ctx context.Context, rec DeadLetterRecord) error
}

// Defaults of DeadLetterOptions.FailureDelay and MaxFailureDelay.
const (
	DefaultFailureDelay    = time.Second
	DefaultMaxFailureDelay = time.Minute
)

// DLQTopic is the default dead-letter topic of topic: topic + ".dlq".
func DLQTopic(topic string) string { return topic + DefaultDLQSuffix }

// DefaultIsSecret reports whether a metadata key looks like it carries a
// credential: authorization, proxy-authorization, cookie, set-cookie, or any
// key containing password, passwd, secret, token, credential, api_key,
// api-key or apikey (without case).
func DefaultIsSecret(key string) bool {
	k := strings.ToLower(key)
	switch k {
	case "authorization", "proxy-authorization", "cookie", "set-cookie":
		return true
	}
	for _, s := range secretParts {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

var secretParts = []string{"password", "passwd", "secret", "token", "credential", "api_key", "api-key", "apikey"} //nolint:gochecknoglobals // a read-only list of words, never written

type deadLetter struct {
	pub        message.Publisher
	store      DeadLetterStore
	group      string
	topic      func(string) string
	isSecret   func(string) bool
	secretKeys map[string]bool
	should     func(error) bool
	maxErr     int
	maxStack   int
	initialize func(string) error
	logger     *slog.Logger
	delay      time.Duration // first wait after a dead letter failed; <0: none
	maxDelay   time.Duration
}

// DeadLetter returns middleware that moves a message whose handler failed
// for good to a dead-letter topic and then acknowledges it, so the consumer
// goes on with the next message. Place it outside [Retry]: the error it sees
// is then the final one, after the retries, or a permanent one at once.
//
// The dead letter keeps the message's UUID, payload and metadata (minus the
// keys that look secret, see DefaultIsSecret) and adds the fault keys
// (router.KeyFaultError, ...) and Watermill's poison-queue keys. A panic in the
// handler is recovered and dead-lettered with its stack.
//
// A message its transport could not unmarshal (it carries
// router.KeyTransportError, see router.NewUndecodable) is dead-lettered at
// once without calling the handler: its fault is a permanent
// *router.UnmarshalError naming the cause, with 0 attempts, and the
// router.KeyTransportError key is not copied.
//
// When the dead-letter publish fails, the middleware waits (FailureDelay,
// doubling up to MaxFailureDelay while the failures go on) and returns the
// handler's error joined with the publish error, so the router nacks the
// message and the transport redelivers it: nothing is lost, and a broken
// dead-letter topic does not become a tight redelivery loop. When the message context is
// already cancelled (the router is shutting down mid-retry) the error is
// returned as is, for the same reason.
func DeadLetter(pub message.Publisher, opts DeadLetterOptions) (message.HandlerMiddleware, error) {
	if pub == nil && opts.Store == nil {
		return nil, errors.New("hexeract: DeadLetter needs a publisher for the dead-letter topic, or DeadLetterOptions.Store")
	}
	dl := &deadLetter{
		pub:        pub,
		store:      opts.Store,
		group:      opts.Group,
		topic:      opts.Topic,
		isSecret:   opts.IsSecret,
		should:     opts.ShouldDeadLetter,
		maxErr:     opts.MaxErrorLength,
		maxStack:   opts.MaxStackLength,
		initialize: opts.Initialize,
		logger:     opts.Logger,
		delay:      opts.FailureDelay,
		maxDelay:   opts.MaxFailureDelay,
	}
	if dl.delay == 0 {
		dl.delay = DefaultFailureDelay
	}
	if dl.maxDelay <= 0 {
		dl.maxDelay = DefaultMaxFailureDelay
	}
	if dl.maxDelay < dl.delay {
		dl.maxDelay = dl.delay
	}
	if dl.topic == nil {
		dl.topic = DLQTopic
	}
	if dl.isSecret == nil {
		dl.isSecret = DefaultIsSecret
	}
	if len(opts.SecretKeys) > 0 {
		dl.secretKeys = make(map[string]bool, len(opts.SecretKeys))
		for _, k := range opts.SecretKeys {
			dl.secretKeys[strings.ToLower(k)] = true
		}
	}
	if dl.maxErr <= 0 {
		dl.maxErr = DefaultMaxErrorLength
	}
	if dl.maxStack <= 0 {
		dl.maxStack = DefaultMaxStackLength
	}
	return dl.middleware, nil
}

func (dl *deadLetter) middleware(h message.HandlerFunc) message.HandlerFunc {
	var initialized atomic.Bool
	var failures atomic.Int32 // consecutive dead letters of this handler that failed
	return func(msg *message.Message) (out []*message.Message, err error) {
		d := deliveryOf(msg)
		ctx := msg.Context()
		if dl.store == nil && dl.initialize != nil && !initialized.Load() {
			// A failure here does not hold the message back: it is tried
			// again before a dead letter is published.
			_ = dl.init(ctx, &initialized)
		}
		if msg.Metadata[router.KeyTransportError] != "" { // the topic lookup only for such a message
			terr := router.TransportError(msg, message.SubscribeTopicFromCtx(ctx))
			// The transport could not unmarshal this delivery: no handler
			// call and no retry can change that, so it is dead-lettered at
			// once, whatever ShouldDeadLetter says (returning it would have
			// the transport redeliver it in a loop).
			if err := dl.deadLetterUndecodable(ctx, msg, d, terr, &initialized); err != nil {
				dl.backOff(ctx, &failures)
				return nil, err
			}
			failures.Store(0)
			return nil, nil
		}
		lastFailure := d.lastFailure
		defer func() {
			if r := recover(); r != nil {
				out, err = nil, wmmiddleware.RecoveredPanicError{V: r, Stacktrace: string(debug.Stack())}
			}
			if err == nil {
				return
			}
			msg.SetContext(ctx)
			if ctx.Err() != nil || (dl.should != nil && !dl.should(err)) {
				return
			}
			if d.lastFailure.Equal(lastFailure) { // no Retry inside recorded this failure
				d.recordFailure(err, time.Now())
			} else {
				// CountCalls recorded the time; the error is the one that
				// reached this middleware (a handler's panic becomes an
				// error only in a Recoverer outside CountCalls).
				d.lastErr = err
			}
			if dl.store == nil && dl.initialize != nil && !initialized.Load() {
				if ierr := dl.init(ctx, &initialized); ierr != nil {
					out, err = nil, errors.Join(err, ierr)
					dl.backOff(ctx, &failures)
					return
				}
			}
			cause := err
			out, err = nil, dl.deadLetter(ctx, msg, d, cause)
			if err != nil {
				dl.backOff(ctx, &failures)
			} else {
				failures.Store(0)
			}
		}()
		return h(msg)
	}
}

// deadLetterUndecodable dead-letters a message its transport could not
// unmarshal (router.KeyTransportError), without calling the handler.
func (dl *deadLetter) deadLetterUndecodable(ctx context.Context, msg *message.Message, d *delivery, cause error, initialized *atomic.Bool) error {
	d.recordFailure(cause, time.Now())
	d.undecodable = true
	if dl.store == nil && dl.initialize != nil && !initialized.Load() {
		if ierr := dl.init(ctx, initialized); ierr != nil {
			return errors.Join(cause, ierr)
		}
	}
	return dl.deadLetter(ctx, msg, d, cause)
}

// backOff waits before a message whose dead letter failed is nacked: the
// handler's FailureDelay doubled for each consecutive failure before this
// one, capped at MaxFailureDelay; it returns early when ctx ends.
func (dl *deadLetter) backOff(ctx context.Context, failures *atomic.Int32) {
	n := failures.Add(1)
	if dl.delay < 0 {
		return
	}
	w := dl.delay
	for i := int32(1); i < n && w < dl.maxDelay; i++ {
		w *= 2
	}
	if w > dl.maxDelay {
		w = dl.maxDelay
	}
	if dl.logger != nil {
		dl.logger.Warn("hexeract: dead letter failed; the message is nacked after a wait",
			"handler", message.HandlerNameFromCtx(ctx), "wait", w, "consecutive_failures", n)
	}
	t := time.NewTimer(w)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// init initializes the handler's dead-letter topic.
func (dl *deadLetter) init(ctx context.Context, done *atomic.Bool) (err error) {
	topic := dl.topic(message.SubscribeTopicFromCtx(ctx))
	defer func() {
		// Some transports panic in SubscribeInitialize when they are not set
		// up for it (watermill-nats with JetStream disabled dereferences a nil
		// JetStream context). Such a transport needs no initialization: go on
		// without it rather than crash the handler.
		if r := recover(); r != nil {
			if dl.logger != nil {
				dl.logger.Warn("hexeract: the transport cannot initialize dead-letter topics; publishing without it",
					"topic", topic, "panic", fmt.Sprint(r))
			}
			done.Store(true)
			err = nil
		}
	}()
	if err := dl.initialize(topic); err != nil {
		return fmt.Errorf("hexeract: initialize dead-letter topic %q (message nacked for redelivery): %w", topic, err)
	}
	done.Store(true)
	return nil
}

// deadLetter publishes the dead letter of msg and returns nil, or the cause
// joined with the publish error.
func (dl *deadLetter) deadLetter(ctx context.Context, msg *message.Message, d *delivery, cause error) error {
	topic := message.SubscribeTopicFromCtx(ctx)
	if topic == "" {
		return errors.Join(cause, errors.New("hexeract: cannot dead-letter: the message context has no subscribe topic (not consumed through a Watermill router)"))
	}
	if dl.store != nil {
		return dl.storeDeadLetter(ctx, msg, d, cause, topic)
	}
	dlqTopic := dl.topic(topic)
	if dlqTopic == "" {
		return errors.Join(cause, fmt.Errorf("hexeract: cannot dead-letter: DeadLetterOptions.Topic returned an empty topic for %q", topic))
	}
	dead := dl.build(ctx, msg, d, cause, topic)
	if err := dl.pub.Publish(dlqTopic, dead); err != nil {
		return errors.Join(cause, fmt.Errorf("hexeract: publish dead letter of %s to %q (message nacked for redelivery): %w", dead.UUID, dlqTopic, err))
	}
	d.deadLettered = true
	d.deadTopic = dlqTopic
	if dl.logger != nil {
		dl.logger.Error("hexeract: message dead-lettered",
			"handler", message.HandlerNameFromCtx(ctx), "message_uuid", dead.UUID, "topic", topic,
			"dead_letter_topic", dlqTopic, "attempts", d.attempts(), "error", cause)
	}
	return nil
}

// storeDeadLetter writes the dead letter of msg to dl.store and returns
// nil, or the cause joined with the write error (the message is nacked).
func (dl *deadLetter) storeDeadLetter(ctx context.Context, msg *message.Message, d *delivery, cause error, topic string) error {
	dead := dl.build(ctx, msg, d, cause, topic)
	f, _ := FaultOf(dead.Metadata)
	kept := message.NewMessage(dead.UUID, dead.Payload)
	for k, v := range dead.Metadata {
		if !IsFaultKey(k) {
			kept.Metadata[k] = v
		}
	}
	if err := dl.store.Write(ctx, DeadLetterRecord{Message: kept, Fault: f, Group: dl.group}); err != nil {
		return errors.Join(cause, fmt.Errorf("hexeract: store dead letter of %s (message nacked for redelivery): %w", dead.UUID, err))
	}
	d.deadLettered = true
	if dl.logger != nil {
		dl.logger.Error("hexeract: message dead-lettered to the store",
			"handler", message.HandlerNameFromCtx(ctx), "message_uuid", dead.UUID, "topic", topic,
			"attempts", d.attempts(), "error", cause)
	}
	return nil
}

func (dl *deadLetter) build(ctx context.Context, msg *message.Message, d *delivery, cause error, topic string) *message.Message {
	id, generated := deadLetterID(msg)
	dead := message.NewMessage(id, msg.Payload)
	for k, v := range msg.Metadata {
		if strings.HasPrefix(k, router.FaultKeyPrefix) || k == router.KeyTransportError || dl.isSecret(k) || (dl.secretKeys != nil && dl.secretKeys[strings.ToLower(k)]) {
			continue
		}
		dead.Metadata[k] = v
	}
	text, typ, stack := describe(cause)
	text = truncate(oneLine(text), dl.maxErr)
	md := dead.Metadata
	md[router.KeyFaultError] = text
	md[router.KeyFaultType] = typ
	md[router.KeyFaultPermanent] = strconv.FormatBool(router.IsPermanent(cause))
	md[router.KeyFaultHandler] = message.HandlerNameFromCtx(ctx)
	md[router.KeyFaultTopic] = topic
	attempts := d.attempts()
	if d.undecodable {
		attempts = 0 // the handler was never called
	}
	md[router.KeyFaultAttempts] = strconv.Itoa(attempts)
	md[router.KeyFaultFirstFailure] = d.firstFailure.UTC().Format(time.RFC3339Nano)
	md[router.KeyFaultLastFailure] = d.lastFailure.UTC().Format(time.RFC3339Nano)
	if generated {
		md[router.KeyFaultGeneratedID] = "true"
	}
	if stack != "" {
		md[router.KeyFaultStack] = truncate(stack, dl.maxStack)
	}
	md[router.KeyPoisonReason] = text
	md[router.KeyPoisonTopic] = topic
	md[router.KeyPoisonHandler] = md[router.KeyFaultHandler]
	md[router.KeyPoisonSubscriber] = message.SubscriberNameFromCtx(ctx)
	// The dead letter's publish span (TracingPublisher) is a child of the
	// consumer span; the incoming message is deliberately not in this
	// context, so correlation decorators leave the copied metadata alone.
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		dead.SetContext(trace.ContextWithSpan(context.Background(), trace.SpanFromContext(ctx)))
	}
	return dead
}

// deadLetterID returns the id of msg's dead letter: the Watermill UUID,
// else ce_id, else the id of the CloudEvent in a structured body, else a new
// id (generated true). A dead letter always has an id, so tools can list,
// move and purge it one by one.
func deadLetterID(msg *message.Message) (id string, generated bool) {
	if msg.UUID != "" {
		return msg.UUID, false
	}
	if id := msg.Metadata.Get(router.KeyID); id != "" {
		return id, false
	}
	if id := router.StructuredEventID(msg); id != "" {
		return id, false
	}
	return router.NewID(), true
}

// describe returns the error text, the error type and, for panics, the
// stack of the panicking goroutine from the panic call on.
func describe(err error) (text, typ, stack string) {
	var p wmmiddleware.RecoveredPanicError
	if errors.As(err, &p) {
		return fmt.Sprintf("panic: %v", p.V), "panic", panicStack(p.Stacktrace)
	}
	return err.Error(), errorType(err), ""
}

// errorType names the Go type of err, looking through plain wrappers
// (fmt.Errorf %w, router.Permanent, pkg/errors).
func errorType(err error) string {
	for err != nil {
		t := fmt.Sprintf("%T", err)
		switch t {
		case "*fmt.wrapError", "*fmt.wrapErrors", "router.permanentError", "*errors.withStack", "*errors.withMessage":
			next := errors.Unwrap(err)
			if next == nil {
				return t
			}
			err = next
			continue
		}
		return t
	}
	return ""
}

// panicStack turns a debug.Stack dump into one line of frames starting at
// the panic call ("function file:line | ..."), dropping the recovery frames.
func panicStack(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	start := 1 // skip "goroutine N [running]:"
	for i, l := range lines {
		if strings.HasPrefix(l, "panic(") {
			start = i
			break
		}
	}
	var b strings.Builder
	for i := start; i+1 < len(lines); i += 2 {
		if b.Len() > 0 {
			b.WriteString(" | ")
		}
		b.WriteString(strings.TrimSpace(lines[i]))
		b.WriteByte(' ')
		file := strings.TrimSpace(lines[i+1])
		if j := strings.LastIndex(file, " +0x"); j > 0 {
			file = file[:j]
		}
		b.WriteString(file)
	}
	return b.String()
}

func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }), "; ")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const more = "…(truncated)"
	cut := n - len(more)
	if cut < 0 {
		cut = 0
	}
	for cut > 0 && cut < len(s) && s[cut]&0xC0 == 0x80 { // keep UTF-8 whole
		cut--
	}
	return s[:cut] + more
}
