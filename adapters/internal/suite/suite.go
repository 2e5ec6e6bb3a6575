// Package suite holds what the adapters' conformance tests share: the
// Watermill universal Pub/Sub suite's features in Hexeract's fast mode.
package suite

import (
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
)

// Long reports whether HEXERACT_LONG=1 asks for the long variants: the
// universal suite with its full message counts (thousands of messages per
// test instead of about a hundred).
func Long() bool { return os.Getenv("HEXERACT_LONG") == "1" }

// Fast returns f with ForceShort set unless HEXERACT_LONG=1, so the
// universal suite runs its short message counts and the whole adapters test
// set stays within a few minutes on two cores.
func Fast(f tests.Features) tests.Features {
	f.ForceShort = !Long()
	return f
}

// RunSequential runs the tests of Watermill's universal suite
// (tests.TestPubSub) one after another instead of in parallel, for
// transports whose consumers see each other's open transactions (PostgreSQL:
// a consumer holding a batch keeps the snapshot horizon back for every
// other consumer in the cluster, which stalls parallel tests until their
// timeouts).
func RunSequential(t *testing.T, f tests.Features, c tests.PubSubConstructor, cg tests.ConsumerGroupPubSubConstructor) {
	all := []func(*testing.T, tests.TestContext, tests.PubSubConstructor){
		tests.TestPublishSubscribe,
		tests.TestConcurrentSubscribe,
		tests.TestConcurrentSubscribeMultipleTopics,
		tests.TestResendOnError,
		tests.TestNoAck,
		tests.TestContinueAfterSubscribeClose,
		tests.TestConcurrentClose,
		tests.TestContinueAfterErrors,
		tests.TestPublishSubscribeInOrder,
		tests.TestPublisherClose,
		tests.TestTopic,
		tests.TestMessageCtx,
		tests.TestSubscribeCtx,
		tests.TestNewSubscriberReceivesOldMessages,
		tests.TestReconnect,
	}
	for _, fn := range all {
		name := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
		name = name[strings.LastIndex(name, ".")+1:]
		t.Run(name, func(t *testing.T) {
			fn(t, tests.TestContext{TestID: tests.NewTestID(), Features: f}, c)
		})
	}
	t.Run("TestConsumerGroups", func(t *testing.T) {
		tests.TestConsumerGroups(t, tests.TestContext{TestID: tests.NewTestID(), Features: f}, cg)
	})
}
