package reqreply

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/hexeract/hexeract"
)

type coded struct{}

func (coded) Error() string     { return "quota exceeded" }
func (coded) ErrorCode() string { return "quota" }

func TestRemoteFrom(t *testing.T) {
	sentinel := NewError("out_of_stock", "item is out of stock")
	cases := []struct {
		name string
		err  error
		want errorReply
	}{
		{"plain", errors.New("boom"), errorReply{Code: CodeInternal, Message: "boom"}},
		{"permanent plain", hexeract.Permanent(errors.New("bad input")), errorReply{Code: CodeInternal, Message: "bad input", Permanent: true}},
		{"remote error as is", sentinel, errorReply{Code: "out_of_stock", Message: "item is out of stock"}},
		{"wrapped remote error, permanent", hexeract.Permanent(fmt.Errorf("sku 7: %w", sentinel)), errorReply{Code: "out_of_stock", Message: "sku 7: item is out of stock", Permanent: true}},
		{"ErrorCode method", fmt.Errorf("call: %w", coded{}), errorReply{Code: "quota", Message: "call: quota exceeded"}},
		{"deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), errorReply{Code: CodeDeadlineExceeded, Message: "query: context deadline exceeded"}},
	}
	for _, c := range cases {
		if got := remoteFrom(c.err); got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestRemoteErrorIs(t *testing.T) {
	a := &RemoteError{Code: "x", Message: "one", RequestType: "t", permanent: true}
	if !errors.Is(a, NewError("x", "other text")) {
		t.Error("same code should match")
	}
	if errors.Is(a, NewError("y", "one")) || errors.Is(a, &RemoteError{}) {
		t.Error("other or empty code should not match")
	}
	if !hexeract.IsPermanent(fmt.Errorf("wrapped: %w", a)) {
		t.Error("permanent marker lost through wrapping")
	}
}

func TestTTL(t *testing.T) {
	if _, ok := TTL(""); ok {
		t.Error("no deadline should give no TTL")
	}
	if _, ok := TTL("yesterday"); ok {
		t.Error("malformed deadline should give no TTL")
	}
	if ttl, ok := TTL("2000-01-01T00:00:00Z"); !ok || ttl.Milliseconds() != 1 {
		t.Errorf("past deadline: got %s, %v; want 1ms", ttl, ok)
	}
}
