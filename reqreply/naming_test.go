package reqreply_test

import (
	"strings"
	"testing"

	"github.com/hexeract/hexeract"
	"github.com/hexeract/hexeract/reqreply"
)

// The client's reply topic comes from the App's topic naming.
func TestReplyTopicFollowsTopicNaming(t *testing.T) {
	for _, c := range []struct {
		opts   []hexeract.Option
		prefix string
	}{
		{nil, "hexeract.replies."},
		{[]hexeract.Option{hexeract.WithTopicNaming(hexeract.UnderscoreTopics{})}, "hexeract_replies_"},
	} {
		app, err := hexeract.New(c.opts...)
		if err != nil {
			t.Fatal(err)
		}
		client, err := reqreply.NewClient(app)
		if err != nil {
			t.Fatal(err)
		}
		if got := client.ReplyTopic(); !strings.HasPrefix(got, c.prefix) || strings.Count(got, ".") != strings.Count(c.prefix, ".") {
			t.Errorf("reply topic %q, want %s<id>", got, c.prefix)
		}
		_ = client.Close()
		_ = app.Close()
	}
}
