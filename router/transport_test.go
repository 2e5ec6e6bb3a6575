package router_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/router"
)

type transportProbe struct{}

func (transportProbe) MessageType() string { return "probe.sent" }

// A typed handler never decodes a message its transport could not
// unmarshal: it returns a permanent UnmarshalError naming the cause, even
// when the raw bytes would decode.
func TestHandlerRefusesUndecodable(t *testing.T) {
	called := false
	fn, err := router.NewHandlerFunc[transportProbe](router.HandlerFunc[transportProbe](func(context.Context, transportProbe) error {
		called = true
		return nil
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	msg := router.NewUndecodable("id-1", []byte(`{}`), message.Metadata{router.KeyType: "probe.sent"}, "metadata:\n corrupt")
	err = fn(msg)
	var ue *router.UnmarshalError
	if !errors.As(err, &ue) || !router.IsPermanent(err) || called {
		t.Fatalf("err = %v (called %v), want a permanent UnmarshalError and no handler call", err, called)
	}
	if ue.MessageID != "id-1" || ue.Cause != "metadata: corrupt" || !strings.Contains(err.Error(), "metadata: corrupt") {
		t.Fatalf("UnmarshalError = %+v", ue)
	}
	if router.TransportError(message.NewMessage("x", nil), "t") != nil {
		t.Fatal("TransportError of a plain message is not nil")
	}
}
