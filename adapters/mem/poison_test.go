package mem_test

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/adapters/internal/suite"
	"github.com/hexeract/hexeract/adapters/mem"
	"github.com/hexeract/hexeract/router"
)

// TestPoisonMessages publishes straight to the broker, interleaved with
// good messages: one without a UUID, and one a bridge from another
// transport marked as undecodable (router.KeyTransportError). The first is
// handled, the second dead-lettered at once with its cause, and nothing is
// left pending.
func TestPoisonMessages(t *testing.T) {
	b := mem.New(mem.Config{})
	defer b.Close()
	topic := "poison"
	sub := b.Subscriber("poison")
	suite.Poison(t, b.Publisher(), sub, sub, topic, func(t *testing.T) {
		noUUID := message.NewMessage("", []byte("good-no-uuid"))
		noUUID.Metadata.Set(router.KeyID, "evt-1")
		msgs := []*message.Message{
			message.NewMessage("g1", []byte("good-1")),
			router.NewUndecodable("", []byte("\x00bad-bridged"), nil, "bridge: frame checksum mismatch"),
			noUUID,
			message.NewMessage("g2", []byte("good-2")),
		}
		if err := b.Publish(topic, msgs...); err != nil {
			t.Fatal(err)
		}
	}, suite.PoisonWant{
		Good: map[string]map[string]string{
			"good-1":       nil,
			"good-no-uuid": {router.KeyID: "evt-1"},
			"good-2":       nil,
		},
		Bad: map[string]string{"bad-bridged": "bridge: frame checksum mismatch"},
	})
	if n := b.Pending(topic, "poison"); n != 0 {
		t.Fatalf("%d messages pending, want 0", n)
	}
}
