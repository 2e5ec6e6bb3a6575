package urlopt

import (
	"net/url"
	"strings"
	"testing"
)

func TestScrub(t *testing.T) {
	cases := []struct{ raw, msg string }{
		{"amqp://guest:p%40ss@host/", "dial amqp://guest:p%40ss@host/: refused; password p@ss"},
		{"kafka://u:pw1@a:1,b:2/", "u:pw1 and pw1"},
		{"nats://token123@host", "auth token123 failed"},
	}
	for _, c := range cases {
		got := Scrub(c.msg, c.raw)
		for _, secret := range []string{"p%40ss", "p@ss", "pw1", "token123"} {
			if strings.Contains(got, secret) {
				t.Errorf("Scrub(%q) = %q still contains %q", c.msg, got, secret)
			}
		}
	}
	if got := Scrub("no credentials here", "redis://host:6379/0"); got != "no credentials here" {
		t.Errorf("Scrub changed a message without credentials: %q", got)
	}
}

func TestParseNeverEchoesPassword(t *testing.T) {
	_, err := Parse("amqp", "amqp://guest:s3cret@[::1/")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Parse error %v", err)
	}
}

func TestQuery(t *testing.T) {
	v, _ := url.ParseQuery("a=1&b=true&d=5s&x=1&x=2&typo=3&n=many")
	q := NewQuery("t", v)
	if q.Int("a", 0) != 1 || !q.Bool("b", false) || q.Duration("d", 0).Seconds() != 5 || q.String("missing", "def") != "def" {
		t.Fatal("getters")
	}
	q.String("x", "")
	q.Int("n", 7)
	err := q.Err(true)
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{`"x" given 2 times`, `n="many"`, "unknown parameter(s) typo"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if rem := q.Remaining(); rem.Get("typo") != "3" || rem.Has("a") {
		t.Errorf("Remaining = %v", rem)
	}
}

func TestKnownParametersArePassedThrough(t *testing.T) {
	v, _ := url.ParseQuery("group=a&heartbeat=5&typo=1")
	q := NewQuery("amqp", v)
	if got := q.String("group", ""); got != "a" {
		t.Fatalf("group = %q", got)
	}
	q.Known("heartbeat")
	if got := q.Remaining().Encode(); got != "heartbeat=5&typo=1" {
		t.Errorf("Remaining = %q, want the pass-through and the unknown parameter", got)
	}
	err := q.Err(true)
	if err == nil || !strings.Contains(err.Error(), "unknown parameter(s) typo") || strings.Contains(err.Error(), "parameter(s) heartbeat") {
		t.Errorf("Err = %v, want typo (and only typo) unknown", err)
	}
}
