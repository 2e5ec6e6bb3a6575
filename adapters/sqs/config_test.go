package sqs_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	hsqs "github.com/hexeract/hexeract/adapters/sqs"
)

func TestParseURL(t *testing.T) {
	cfg, err := hsqs.ParseURL("sqs://AKIDEXAMPLE:s3cr3t@eu-west-1/?endpoint=http://127.0.0.1:4566&wait=5s&visibility=45s&max_messages=4&pollers=2&create_queues=false")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != "eu-west-1" || cfg.Endpoint != "http://127.0.0.1:4566" || cfg.WaitTime != 5*time.Second ||
		cfg.VisibilityTimeout != 45*time.Second || cfg.MaxMessages != 4 || cfg.Pollers != 2 || !cfg.DisableQueueCreation {
		t.Fatalf("parsed %+v", cfg)
	}
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil || creds.AccessKeyID != "AKIDEXAMPLE" || creds.SecretAccessKey != "s3cr3t" {
		t.Fatalf("credentials %v %v", creds.AccessKeyID, err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(verb, cfg); strings.Contains(s, "s3cr3t") {
			t.Fatalf("Config printed with %s shows the secret: %s", verb, s)
		}
	}

	cfg, err = hsqs.ParseURL("sqs:///")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != "" || cfg.Credentials != nil || cfg.WaitTime != hsqs.DefaultWaitTime || cfg.VisibilityTimeout != hsqs.DefaultVisibilityTimeout ||
		cfg.MaxMessages != hsqs.DefaultMaxMessages || cfg.Pollers != 1 || cfg.DisableQueueCreation {
		t.Fatalf("defaults: %+v", cfg)
	}
	cfg, err = hsqs.ParseURL("sqs://us-east-1?wait=0s")
	if err != nil || cfg.WaitTime != hsqs.NoWait {
		t.Fatalf("wait=0s: %v %v", cfg.WaitTime, err)
	}
}

func TestParseURLErrors(t *testing.T) {
	const secret = "v3ry-s3cr3t"
	cases := map[string]string{
		"amqp://guest:" + secret + "@localhost/":                     `scheme "amqp"`,
		"sqs://id:" + secret + "@us-east-1/queue":                    "no path",
		"sqs://id:" + secret + "@us-east-1:99/":                      "takes no port",
		"sqs://id:" + secret + "@us-east-1/?wait=forever":            "wait=",
		"sqs://id:" + secret + "@us-east-1/?wait=30s":                "WaitTime",
		"sqs://id:" + secret + "@us-east-1/?visibility=500ms":        "VisibilityTimeout",
		"sqs://id:" + secret + "@us-east-1/?visibility=0s":           "visibility=", // used to become the 30s default
		"sqs://id:" + secret + "@us-east-1/?wait=-1ns":               "wait=",       // used to become NoWait
		"sqs://id:" + secret + "@us-east-1/?max_messages=11":         "MaxMessages",
		"sqs://id:" + secret + "@us-east-1/?pollers=x":               "pollers=",
		"sqs://id:" + secret + "@us-east-1/?create_queues=maybe":     "create_queues=",
		"sqs://id:" + secret + "@us-east-1/?endpoint=127.0.0.1:4566": "Endpoint",
		"sqs://id:" + secret + "@us-east-1/?colour=blue":             `unknown parameter "colour"`,
		"sqs://id:" + secret + "@us-east-1/?wait=1s&wait=2s":         "given 2 times",
		"sqs://id@us-east-1/":                                        "KEY_ID:SECRET",
		"sqs://us-east-1/?session_token=" + secret:                   "session_token needs",
		"sqs://id:" + secret + "@us east/":                           "malformed URL",
		"sqs://id:" + secret + "@us-east-1/%zz":                      "malformed URL",
	}
	for raw, want := range cases {
		_, err := hsqs.ParseURL(raw)
		if err == nil {
			t.Errorf("%s: no error", strings.ReplaceAll(raw, secret, "SECRET"))
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error shows the secret: %v", err)
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q does not mention %q", strings.ReplaceAll(raw, secret, "SECRET"), err, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	var cfg hsqs.Config
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	cfg.WaitTime = 1500 * time.Millisecond
	cfg.MaxBatchBytes = 2 << 20
	cfg.Pollers = -1
	err := cfg.Validate()
	for _, want := range []string{"WaitTime", "MaxBatchBytes", "Pollers"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
	if _, err := hsqs.NewPublisher(context.Background(), cfg, nil); err == nil {
		t.Error("NewPublisher accepted an invalid config")
	}
	if _, err := hsqs.NewSubscriber(context.Background(), cfg, nil); err == nil {
		t.Error("NewSubscriber accepted an invalid config")
	}
}

func TestDefaultQueueName(t *testing.T) {
	for topic, want := range map[string]string{
		"users.registered":      "users-registered",
		"orders.fifo":           "orders.fifo",
		"a.b.fifo":              "a-b.fifo",
		"billing_v2-events":     "billing_v2-events",
		"ünïcode topic/with:??": "--n--code-topic-with---", // one "-" per byte
	} {
		got, err := hsqs.DefaultQueueName(topic)
		if err != nil || got != want {
			t.Errorf("DefaultQueueName(%q) = %q, %v; want %q", topic, got, err, want)
		}
	}
	for _, topic := range []string{"", ".fifo", strings.Repeat("x", 81)} {
		if _, err := hsqs.DefaultQueueName(topic); err == nil {
			t.Errorf("DefaultQueueName(%q): no error", topic)
		}
	}
}
