package middleware

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/router"
)

// Fault is Hexeract's one fault record. It is the fault of a dead letter,
// read back from its metadata with [FaultOf] (dead letters written by
// Watermill's PoisonQueue have only Error, Topic and Handler), and one
// failed round of a message's handling in the redelivery history that
// scheduler.Redelivery writes (router.KeyRedeliveryHistory, read with
// scheduler.FaultHistory), where Round and At are set.
type Fault struct {
	Error        string    `json:"error"`
	Type         string    `json:"type,omitempty"`
	Permanent    bool      `json:"permanent"`
	Handler      string    `json:"handler,omitempty"`
	Topic        string    `json:"topic,omitempty"`    // the topic the message was consumed from
	Attempts     int       `json:"attempts,omitempty"` // handler calls made (in this round, for a redelivery record)
	FirstFailure time.Time `json:"first_failure,omitzero"`
	LastFailure  time.Time `json:"last_failure,omitzero"`
	Stack        string    `json:"stack,omitempty"`
	// Round is the delivery round of a redelivery record: 1 for the first
	// delivery, 2 for the first redelivery, ...; 0 on a dead letter's fault.
	Round int `json:"round,omitempty"`
	// At is the time a redelivery record's round failed; zero on a dead
	// letter's fault (see FirstFailure and LastFailure).
	At time.Time `json:"at,omitzero"`
}

// FaultOf reads the fault record of a dead letter from its metadata,
// falling back to Watermill's poison-queue keys. ok is false when md has
// neither.
func FaultOf(md message.Metadata) (f Fault, ok bool) {
	f = Fault{
		Error:   md.Get(router.KeyFaultError),
		Type:    md.Get(router.KeyFaultType),
		Handler: md.Get(router.KeyFaultHandler),
		Topic:   md.Get(router.KeyFaultTopic),
		Stack:   md.Get(router.KeyFaultStack),
	}
	f.Permanent, _ = strconv.ParseBool(md.Get(router.KeyFaultPermanent))
	f.Attempts, _ = strconv.Atoi(md.Get(router.KeyFaultAttempts))
	f.FirstFailure, _ = time.Parse(time.RFC3339Nano, md.Get(router.KeyFaultFirstFailure))
	f.LastFailure, _ = time.Parse(time.RFC3339Nano, md.Get(router.KeyFaultLastFailure))
	if f.Error == "" {
		f.Error = md.Get(router.KeyPoisonReason)
	}
	if f.Topic == "" {
		f.Topic = md.Get(router.KeyPoisonTopic)
	}
	if f.Handler == "" {
		f.Handler = md.Get(router.KeyPoisonHandler)
	}
	return f, f.Error != "" || f.Topic != ""
}

// IsFaultKey reports whether a metadata key is one a dead-letter step adds:
// the hexeract_fault_ keys and Watermill's poison-queue keys.
func IsFaultKey(key string) bool {
	switch key {
	case router.KeyPoisonReason, router.KeyPoisonTopic, router.KeyPoisonHandler, router.KeyPoisonSubscriber:
		return true
	}
	return strings.HasPrefix(key, router.FaultKeyPrefix)
}

// ErrNoOriginalTopic is returned by [Revive] for a dead letter that records
// no original topic.
var ErrNoOriginalTopic = errors.New("hexeract: dead letter has no original topic (no hexeract_fault_topic or topic_poisoned metadata)")

// Revive turns a dead letter back into the message that failed: same UUID,
// payload and metadata without the fault keys (see [IsFaultKey]). It
// returns the topic to publish it on: to when not empty, otherwise the
// original topic recorded in the dead letter, or [ErrNoOriginalTopic].
func Revive(dead *message.Message, to string) (*message.Message, string, error) {
	if to == "" {
		f, _ := FaultOf(dead.Metadata)
		to = f.Topic
	}
	if to == "" {
		return nil, "", ErrNoOriginalTopic
	}
	msg := message.NewMessage(dead.UUID, dead.Payload)
	for k, v := range dead.Metadata {
		if !IsFaultKey(k) {
			msg.Metadata[k] = v
		}
	}
	return msg, to, nil
}
