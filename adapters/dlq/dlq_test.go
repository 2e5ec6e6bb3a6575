package dlq

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestUnknownErrorListsExisting(t *testing.T) {
	err := error(&UnknownError{Kind: "topic", Name: "orders.dql", Existing: dlqTopics([]string{"payments.dlq", "orders", "orders.dlq", "orders-dlq"})})
	if !errors.Is(err, ErrUnknown) {
		t.Fatal("not ErrUnknown")
	}
	want := `dlq: topic "orders.dql" does not exist; existing dead-letter topics: orders-dlq, orders.dlq, payments.dlq`
	if err.Error() != want {
		t.Fatalf("got  %s\nwant %s", err, want)
	}
	err = &UnknownError{Kind: "group", Name: "biling", Topic: "orders.dlq", Existing: []string{"billing"}}
	if !strings.Contains(err.Error(), `group "biling" does not exist on "orders.dlq"; existing groups: billing`) {
		t.Fatal(err)
	}
	if got := dlqTopics([]string{"a", "b"}); len(got) != 2 {
		t.Fatalf("without .dlq topics every topic is listed: %v", got)
	}
}

func TestOpenRefusesMemAndUnknownSchemes(t *testing.T) {
	for _, u := range []string{"mem://", "foo://x", "", "amqp://user:s3cret@[::1"} {
		_, err := Open(context.Background(), u)
		if err == nil {
			t.Fatalf("Open(%q) succeeded", u)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("password in %v", err)
		}
	}
}
