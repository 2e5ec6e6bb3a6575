package adapters_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/hexeract/hexeract/adapters"
	"github.com/hexeract/hexeract/adapters/amqp"
	"github.com/hexeract/hexeract/adapters/kafka"
	"github.com/hexeract/hexeract/adapters/nats"
	"github.com/hexeract/hexeract/adapters/redis"
	hsql "github.com/hexeract/hexeract/adapters/sql"
	"github.com/hexeract/hexeract/adapters/sqs"
)

// FuzzParseURL feeds arbitrary transport URLs to the URL parser of every
// adapter (what adapters.Open calls before it connects) and to Open itself
// for the schemes that connect to nothing (mem://, unknown schemes,
// malformed URLs). None may panic, and no error may contain the URL's
// password.
func FuzzParseURL(f *testing.F) {
	seeds := []string{
		"amqp://guest:s3cretpw@127.0.0.1:5672/vhost?group=billing&prefetch=10",
		"amqps://u:s3cretpw@host/?group=a%zz",
		"kafka://u:s3cretpw@h1:9092,h2:9092/?group=g&acks=leader&offset=newest&tls=true",
		"kafka://:s3cretpw@/?partitions=-1",
		"nats://u:s3cretpw@127.0.0.1:4222/?ack_wait=3s&max_deliver=x",
		"postgres://postgres:s3cretpw@127.0.0.1:5432/test?sslmode=disable&group=g&table_prefix=Bad;--",
		"postgresql://[::1]:5432/db?poll_interval=-1s",
		"redis://:s3cretpw@127.0.0.1:6379/0?group=g&block=1s",
		"rediss://u:s3cretpw@host/notanumber",
		"sqs://AKID:s3cretpw@us-east-1/?endpoint=http://127.0.0.1:4566&wait=25s",
		"sqs://s3cretpw@/",
		"mem://?buffer=-1&persistent=maybe",
		"mem://?group=g",
		"ftp://u:s3cretpw@host/",
		"amqp://u:s3cretpw@[::1/",
		"://s3cretpw@",
		"amqp://u:s3cr%zzetpw@host/",
		"\x00amqp://u:s3cretpw@h/",
		"",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		pw := password(raw)
		check := func(what string, err error) {
			if err != nil && pw != "" && strings.Contains(err.Error(), pw) {
				t.Fatalf("%s(%q): error shows the password %q: %v", what, raw, pw, err)
			}
		}
		_, err := amqp.ParseURL(raw)
		check("amqp.ParseURL", err)
		_, err = kafka.ParseURL(raw)
		check("kafka.ParseURL", err)
		_, err = nats.ParseURL(raw)
		check("nats.ParseURL", err)
		_, err = hsql.ParseURL(raw)
		check("sql.ParseURL", err)
		_, err = redis.ParseURL(raw)
		check("redis.ParseURL", err)
		_, err = sqs.ParseURL(raw)
		check("sqs.ParseURL", err)
		// Open connects for the network schemes; fuzz it only where it does not.
		u, perr := url.Parse(strings.TrimSpace(raw))
		if perr == nil {
			switch strings.ToLower(u.Scheme) {
			case "amqp", "amqps", "kafka", "nats", "postgres", "postgresql", "redis", "rediss", "sqs":
				return
			}
		}
		tr, err := adapters.Open(context.Background(), raw)
		check("adapters.Open", err)
		if err == nil {
			if tr.Scheme != "mem" {
				t.Fatalf("Open(%q) opened scheme %q without connecting anywhere", raw, tr.Scheme)
			}
			_ = tr.Close()
		}
	})
}

// password returns the password in raw's user info, when it has one long
// enough to be told apart from the rest of an error text.
func password(raw string) string {
	i := strings.Index(raw, "://")
	if i < 0 {
		return ""
	}
	rest := raw[i+3:]
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	if slash := strings.IndexAny(rest, "/?#"); slash >= 0 && slash < at {
		return ""
	}
	userinfo := rest[:at]
	c := strings.Index(userinfo, ":")
	pw := userinfo[c+1:]
	if c < 0 {
		pw = userinfo // sqs://SECRET@region: a bare user info is a credential too
	}
	if len(pw) < 6 {
		return ""
	}
	return pw
}
