package router_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/router"
)

type other struct{}

func (other) MessageType() string { return "users.registered" }

type ptrOnly struct{ name string }

func (p *ptrOnly) MessageType() string { return p.name }

func TestRegistry(t *testing.T) {
	reg := router.NewRegistry()
	name, err := router.Register[UserRegistered](reg)
	if err != nil || name != "users.registered" {
		t.Fatalf("Register = %q, %v", name, err)
	}
	if _, err := router.Register[UserRegistered](reg); err != nil {
		t.Fatalf("registering the same type twice: %v", err)
	}
	if _, err := router.Register[other](reg); err == nil || !strings.Contains(err.Error(), "router_test.UserRegistered") {
		t.Fatalf("another type under a taken name: %v", err)
	}
	if _, err := router.Register[*ptrOnly](reg); err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("MessageType that panics on the zero value: %v", err)
	}
	m, err := reg.DecodeAny(router.JSON{}, "users.registered", []byte(`{"user_id":"7"}`))
	if err != nil || m.(UserRegistered).UserID != "7" {
		t.Fatalf("DecodeAny = %v, %v", m, err)
	}
	if _, err := reg.DecodeAny(router.JSON{}, "nope", nil); err == nil {
		t.Fatal("DecodeAny of an unknown name succeeded")
	}
}

func TestDecodeErrorsArePermanentAndSpecific(t *testing.T) {
	msg := message.NewMessage("m-1", []byte(`{"user_id": 5}`))
	msg.Metadata.Set(router.KeyType, "users.registered")
	_, err := router.Decode[UserRegistered](msg, router.JSON{}, "users.registered")
	var de *router.DecodeError
	if !errors.As(err, &de) || !router.IsPermanent(err) || de.MessageID != "m-1" {
		t.Fatalf("wrong schema: %v", err)
	}
	if router.IsPermanent(errors.New("plain")) || !router.IsPermanent(router.Permanent(errors.New("x"))) || router.Permanent(nil) != nil {
		t.Fatal("Permanent/IsPermanent disagree")
	}
	wrapped := errors.Join(errors.New("ctx"), router.Permanent(errors.New("x")))
	if !router.IsPermanent(wrapped) {
		t.Fatal("IsPermanent does not look through wrapping")
	}
}

func TestNewMessageWithoutIncomingStartsAConversation(t *testing.T) {
	m, err := router.NewMessage(context.Background(), UserRegistered{}, router.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	md := m.Metadata
	if md.Get(router.KeyCorrelationID) != m.UUID || md.Get(router.KeyCausationID) != "" || md.Get(router.KeySource) != router.DefaultSource {
		t.Fatalf("metadata = %v", md)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"user_id":"1","email":"a@b"}`), "users.registered")
	f.Add([]byte(`{not json`), "users.registered")
	f.Add([]byte(`{"user_id":5}`), "users.registered")
	f.Add([]byte(``), "")
	f.Add([]byte(`null`), "users.deleted")
	f.Fuzz(func(t *testing.T, payload []byte, typ string) {
		msg := message.NewMessage("fuzz", payload)
		if typ != "" {
			msg.Metadata.Set(router.KeyType, typ)
		}
		_, err := router.Decode[UserRegistered](msg, router.JSON{}, "users.registered")
		if err != nil && !router.IsPermanent(err) {
			t.Fatalf("decode error is not permanent: %v", err)
		}
		if typ != "users.registered" && err == nil {
			t.Fatalf("type %q accepted", typ)
		}
	})
}

type noWireName struct{}

func (noWireName) MessageType() string { return "" }

// TestNewMessageRefusesNilAndEmptyWireName: a message without ce_type can
// never be decoded, so NewMessage refuses to build one (it used to build it,
// and panicked on a nil message).
func TestNewMessageRefusesNilAndEmptyWireName(t *testing.T) {
	ctx := context.Background()
	if _, err := router.NewMessage(ctx, noWireName{}, router.EncodeOptions{}); err == nil || !strings.Contains(err.Error(), "empty wire name") {
		t.Fatalf("empty wire name: %v", err)
	}
	if _, err := router.NewMessage(ctx, &ptrOnly{}, router.EncodeOptions{}); err == nil {
		t.Fatal("empty wire name from a pointer type accepted")
	}
	if _, err := router.NewMessage(ctx, nil, router.EncodeOptions{}); err == nil {
		t.Fatal("nil message accepted")
	}
}
