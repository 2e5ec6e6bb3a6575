package hexeract

import (
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/middleware"
)

// WithDefaultMiddleware tunes the default chain that [New] installs: the
// function receives the chain's configuration (retry policy, dead-letter
// options, per-attempt timeout, OpenTelemetry providers) after New filled in
// the App's publisher and logger, and may change any field. Options given
// several times apply in order.
//
//	hexeract.WithDefaultMiddleware(func(c *middleware.DefaultConfig) {
//		c.Retry.MaxAttempts = 3
//		c.Timeout = 5 * time.Second
//	})
//
// Middleware added with [WithMiddleware] or [App.Use] runs inside the default
// chain, that is once per attempt, closest to the handler.
func WithDefaultMiddleware(configure func(*middleware.DefaultConfig)) Option {
	return func(c *config) {
		if configure != nil {
			c.defaultMiddleware = append(c.defaultMiddleware, configure)
		}
	}
}

// installDefaults decorates the App's publisher (correlation, then tracing)
// and adds the default middleware chain (see [middleware.Default]) to r,
// unless [WithoutDefaultMiddleware] was given. Dead letters go through the
// decorated publisher, and each dead-letter topic is created through the
// subscriber's SubscribeInitialize when it has one; an App without a publisher gets the chain without
// its dead-letter step (failures are nacked) and a warning in the log.
func (a *App) installDefaults(cfg *config, r *message.Router) error {
	if cfg.noDefaults {
		return nil
	}
	dc := middleware.DefaultConfig{Logger: a.logger}
	for _, configure := range cfg.defaultMiddleware {
		configure(&dc)
	}
	if a.store != nil && dc.DeadLetter.Store == nil {
		// With a store, dead letters go to its table (deadletter package),
		// where `hexeract dlq stored` lists, retries and edits them.
		dc.DeadLetter.Store = a.store.DeadLetters()
	}
	if dc.DeadLetter.Topic == nil {
		dc.DeadLetter.Topic = a.topics.DeadLetterTopic
	}
	if a.publisher != nil {
		a.publisher = middleware.TracingPublisher(middleware.CorrelationPublisher(a.publisher), dc.Tracing)
		if dc.Publisher == nil {
			dc.Publisher = a.publisher
		}
	} else if a.subscriber != nil && dc.Publisher == nil {
		a.logger.Warn("hexeract: the App has no publisher, so the default middleware has no dead-letter step; messages that fail for good are nacked and redelivered. Pass hexeract.WithPublisher to dead-letter them.")
	}
	if si, ok := a.subscriber.(message.SubscribeInitializer); ok && dc.DeadLetter.Initialize == nil {
		// Create each dead-letter topic for the App's consumer group before
		// the first failure: on RabbitMQ a dead letter published to an
		// exchange without a bound queue would be dropped.
		dc.DeadLetter.Initialize = si.SubscribeInitialize
	}
	if dc.Publisher != nil {
		a.dlqTopic = dc.DeadLetter.Topic
	}
	chain, err := middleware.Default(dc)
	if err != nil {
		return err
	}
	r.AddMiddleware(chain...)
	return nil
}
