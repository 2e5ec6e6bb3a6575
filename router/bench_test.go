package router_test

import (
	"context"
	"testing"

	"github.com/hexeract/hexeract/router"
)

// BenchmarkDecode measures router.Decode on a binary-mode message, the hot
// path of every typed handler: the content type check for structured mode
// must not cost an allocation here.
func BenchmarkDecode(b *testing.B) {
	msg, err := router.NewMessage(context.Background(), UserRegistered{UserID: "u-1", Email: "ada@example.com"}, router.EncodeOptions{})
	if err != nil {
		b.Fatal(err)
	}
	codec := router.JSON{}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := router.Decode[UserRegistered](msg, codec, "users.registered"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHandlerFunc measures a typed handler function (NewHandlerFunc)
// on a binary-mode message: decode plus the handler context.
func BenchmarkHandlerFunc(b *testing.B) {
	msg, err := router.NewMessage(context.Background(), UserRegistered{UserID: "u-1", Email: "ada@example.com"}, router.EncodeOptions{})
	if err != nil {
		b.Fatal(err)
	}
	fn, err := router.NewHandlerFunc(router.HandlerFunc[UserRegistered](func(context.Context, UserRegistered) error { return nil }), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := fn(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExpandStructured measures the structured-mode check the App runs
// on every incoming message (binary: nothing to do, no allocation) and the
// expansion of one structured event.
func BenchmarkExpandStructured(b *testing.B) {
	bin, err := router.NewMessage(context.Background(), UserRegistered{UserID: "u-1", Email: "ada@example.com"}, router.EncodeOptions{})
	if err != nil {
		b.Fatal(err)
	}
	s, err := router.ToStructured(bin)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("binary", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if msgs, err := router.ExpandStructured(bin); msgs != nil || err != nil {
				b.Fatal(msgs, err)
			}
		}
	})
	b.Run("structured", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if msgs, err := router.ExpandStructured(s); len(msgs) != 1 || err != nil {
				b.Fatal(msgs, err)
			}
		}
	})
	b.Run("decode-structured", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := router.Decode[UserRegistered](s, router.JSON{}, "users.registered"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
