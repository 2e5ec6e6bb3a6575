package router

import "github.com/ThreeDotsLabs/watermill/message"

// growStack makes the calling goroutine's stack large enough for decoding
// and a typical handler in one step, while the stack is still shallow.
//
// Watermill's router runs each message on a new goroutine, which starts
// with a small stack; encoding/json then grows it two or three times deep
// inside the decoder, and every growth walks and copies all the frames on
// the stack (a quarter of the CPU of Watermill's CQRS handlers went there).
// A single frame of stackReserve bytes at the top of the handler triggers
// one growth with a handful of frames to copy, after which the decoder and
// the handler run without further growth.
//
//go:noinline
func growStack() {
	var reserve [stackReserve]byte
	sink(reserve[:])
}

// stackReserve is the stack growStack reserves, measured on JSON messages
// of a few hundred bytes (see BenchmarkEndToEnd in the root package).
const stackReserve = 8 << 10

//go:noinline
func sink(b []byte) {
	if len(b) > 0 && b[0] == 1 {
		panic("unreachable")
	}
}

// ReserveStack is Watermill handler middleware that reserves the handler
// goroutine's stack in one step before the rest of the chain runs (see
// growStack). hexeract.New installs it outermost; add it first on a plain
// Watermill router to get the same effect for deep middleware chains.
func ReserveStack(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		growStack()
		return h(msg)
	}
}
