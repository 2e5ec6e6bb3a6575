// Package gochannel configures Watermill's in-memory GoChannel Pub/Sub, the
// transport Hexeract uses when no other is given. Messages live only in the
// process: use it for tests, examples and in-process decoupling, never where
// a message must survive a restart.
package gochannel

import (
	"github.com/ThreeDotsLabs/watermill"
	wmgochannel "github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
)

// Config configures the in-memory Pub/Sub. The zero value is usable.
type Config struct {
	// Buffer is the size of each subscriber's output channel. 0 means unbuffered.
	Buffer int64
	// Persistent makes new subscribers receive every message published
	// before they subscribed (kept in memory for the life of the Pub/Sub).
	Persistent bool
	// BlockPublishUntilAck makes Publish return only after every subscriber
	// acknowledged the message, which gives back-pressure and makes
	// "published" mean "handled".
	BlockPublishUntilAck bool
}

// PubSub is the in-memory transport; it is both a Watermill Publisher and a
// Watermill Subscriber, and the same instance must be used for both.
type PubSub = wmgochannel.GoChannel

// New returns an in-memory Pub/Sub. logger may be nil.
func New(cfg Config, logger watermill.LoggerAdapter) *PubSub {
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	return wmgochannel.NewGoChannel(wmgochannel.Config{
		OutputChannelBuffer:            cfg.Buffer,
		Persistent:                     cfg.Persistent,
		BlockPublishUntilSubscriberAck: cfg.BlockPublishUntilAck,
	}, logger)
}
