package scheduler

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/middleware"
	"github.com/hexeract/hexeract/router"
)

// Metadata keys written by [Scheduler.Redelivery]; they are defined in
// package router (router/keys.go), with every other metadata key.
const (
	// Deprecated: use router.KeyRedeliveries.
	KeyRedeliveries = router.KeyRedeliveries
	// Deprecated: use router.KeyRedeliveryHistory.
	KeyFaultHistory = router.KeyRedeliveryHistory
)

// DefaultRedeliveryDelays returns the delays used when
// RedeliveryConfig.Delays is empty (10 s, 1 min, 5 min): a new slice on
// every call, so a caller that changes it changes no one else's default.
func DefaultRedeliveryDelays() []time.Duration {
	return []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute}
}

// Fault is one failed round of a message's handling, as recorded in
// [router.KeyRedeliveryHistory]: Round, Attempts (immediate attempts in
// this round, from middleware.Retry; 1 without it), Error, Permanent,
// Handler, Topic and At are set.
//
// Deprecated: use middleware.Fault, Hexeract's one fault record; this is an
// alias of it.
type Fault = middleware.Fault

// FaultHistory decodes the [router.KeyRedeliveryHistory] metadata of msg
// (nil when absent): one [middleware.Fault] per failed round, oldest first.
func FaultHistory(msg *message.Message) ([]middleware.Fault, error) {
	raw := msg.Metadata.Get(router.KeyRedeliveryHistory)
	if raw == "" {
		return nil, nil
	}
	var h []middleware.Fault
	if err := json.Unmarshal([]byte(raw), &h); err != nil {
		return nil, fmt.Errorf("scheduler: bad %s metadata: %w", router.KeyRedeliveryHistory, err)
	}
	return h, nil
}

// RedeliveryConfig configures [Scheduler.Redelivery].
type RedeliveryConfig struct {
	// Delays are the waits before each redelivery; the message is
	// dead-lettered after the last one fails. Empty means
	// DefaultRedeliveryDelays (10 s, 1 min, 5 min).
	Delays []time.Duration
	// Topic returns the topic the message is redelivered on; nil means the
	// topic it was received from.
	Topic func(msg *message.Message) string
	// IsPermanent classifies more errors as permanent (not redelivered), on
	// top of router.IsPermanent.
	IsPermanent func(err error) bool
	// Logger logs each redelivery; nil means the scheduler's logger.
	Logger *slog.Logger
}

// Redelivery returns middleware that gives a failing message more chances
// later instead of holding the consumer: when the handler (wrapped in
// immediate retries, for example middleware.Retry placed inside this
// middleware) still fails, the message is written to the scheduler table to
// be delivered again after the next delay, and acknowledged. The delays
// therefore survive restarts. Each failure is appended to the
// [router.KeyRedeliveryHistory] metadata; when the delays are used up, or the error is
// permanent, the middleware returns the error with the full history on the
// message, for middleware.DeadLetter to dead-letter it (the dead letter keeps
// the history next to its own fault keys).
//
// Place it inside DeadLetter and outside Retry:
//
//	router.AddMiddleware(deadLetter, redelivery, retry)
//
// Without a dead-letter middleware outside it, a message that exhausted its
// redeliveries is nacked and the transport delivers it again.
//
// The redelivered message keeps its UUID, payload and metadata (its ce_id
// too, so an inbox still recognises it).
func (s *Scheduler[TTx]) Redelivery(cfg RedeliveryConfig) (message.HandlerMiddleware, error) {
	delays := cfg.Delays
	if len(delays) == 0 {
		delays = DefaultRedeliveryDelays()
	}
	for i, d := range delays {
		if d <= 0 {
			return nil, fmt.Errorf("scheduler: redelivery delay %d is %s; every delay must be positive", i+1, d)
		}
	}
	delays = append([]time.Duration(nil), delays...)
	logger := cfg.Logger
	if logger == nil {
		logger = s.cfg.logger
	}
	permanent := func(err error) bool {
		return router.IsPermanent(err) || (cfg.IsPermanent != nil && cfg.IsPermanent(err))
	}
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			if err == nil {
				return out, nil
			}
			ctx := msg.Context()
			topic := message.SubscribeTopicFromCtx(ctx)
			if cfg.Topic != nil {
				topic = cfg.Topic(msg)
			}
			history, herr := FaultHistory(msg)
			if herr != nil {
				logger.Warn("scheduler: dropping unreadable fault history", "message_uuid", msg.UUID, "error", herr)
			}
			round, _ := strconv.Atoi(msg.Metadata.Get(router.KeyRedeliveries))
			attempts := middleware.Attempt(ctx)
			if attempts == 0 {
				attempts = 1
			}
			history = append(history, middleware.Fault{
				Round:     round + 1,
				Attempts:  attempts,
				Error:     err.Error(),
				Permanent: permanent(err),
				Handler:   message.HandlerNameFromCtx(ctx),
				Topic:     topic,
				At:        time.Now().UTC(),
			})
			encoded, jerr := json.Marshal(history)
			if jerr != nil {
				return nil, errors.Join(err, jerr)
			}
			if round < len(delays) && !permanent(err) && topic != "" {
				next := msg.Copy()
				next.Metadata.Set(router.KeyRedeliveryHistory, string(encoded))
				next.Metadata.Set(router.KeyRedeliveries, strconv.Itoa(round+1))
				at := time.Now().Add(delays[round])
				if _, serr := s.ScheduleMessagesWith(ctx, s.drv.Executor(), at, topic, next); serr != nil {
					// Not rescheduled: nack, so the transport redelivers it.
					return nil, fmt.Errorf("scheduler: redelivery of %s failed (%v) after handler error: %w", msg.UUID, serr, err)
				}
				logger.Warn("scheduler: handler failed; message rescheduled",
					"handler", message.HandlerNameFromCtx(ctx), "message_uuid", msg.UUID, "topic", topic,
					"redelivery", round+1, "of", len(delays), "at", at, "error", err)
				return nil, nil
			}
			// Out of delays, or permanent: hand the final error, with the
			// history on the message, to the dead-letter middleware outside.
			msg.Metadata.Set(router.KeyRedeliveryHistory, string(encoded))
			return nil, err
		}
	}, nil
}
