package sqs_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	hsqs "github.com/hexeract/hexeract/adapters/sqs"
	"github.com/hexeract/hexeract/internal/testenv"
)

// TestMain makes sure the SQS-compatible server of the tests answers before
// any test or example runs, starting the fauxqs emulator when it is not
// running (testenv.EnsureSQS): Example talks to it and has no testing.T to
// fail with a clear message.
func TestMain(m *testing.M) {
	if _, err := testenv.EnsureSQS(); err != nil {
		fmt.Fprintln(os.Stderr, "adapters/sqs tests:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// testConfig returns the Config of the test server (testenv.SQSURL).
func testConfig(t testing.TB) hsqs.Config {
	t.Helper()
	cfg, err := hsqs.ParseURL(testenv.SQSURL(t))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// suffix returns a random name suffix so tests never share queues.
func suffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// countingTransport counts SQS operations by their X-Amz-Target header.
type countingTransport struct {
	mu    sync.Mutex
	calls map[string]int
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS.")
	c.mu.Lock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[op]++
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (c *countingTransport) count(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[op]
}

// rawClient returns a plain SDK client for the test server, optionally
// counting calls.
func rawClient(t testing.TB, counter *countingTransport) *sqs.Client {
	t.Helper()
	cfg := testConfig(t)
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	opts := sqs.Options{
		Region:      cfg.Region,
		Credentials: aws.NewCredentialsCache(hsqs.StaticCredentials(creds.AccessKeyID, creds.SecretAccessKey, "")),
	}
	if cfg.Endpoint != "" {
		opts.BaseEndpoint = aws.String(cfg.Endpoint)
	}
	if counter != nil {
		opts.HTTPClient = &http.Client{Transport: counter}
	}
	return sqs.New(opts)
}

// queueCounts returns the visible and in-flight message counts of a queue.
func queueCounts(t testing.TB, client *sqs.Client, queue string) (visible, inflight string) {
	t.Helper()
	ctx := context.Background()
	u, err := client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(queue)})
	if err != nil {
		t.Fatal(err)
	}
	out, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       u.QueueUrl,
		AttributeNames: []types.QueueAttributeName{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Attributes["ApproximateNumberOfMessages"], out.Attributes["ApproximateNumberOfMessagesNotVisible"]
}

// assertNoAdapterGoroutines fails if a goroutine of the adapter is still
// running shortly after everything was closed.
func assertNoAdapterGoroutines(t testing.TB) {
	t.Helper()
	var buf bytes.Buffer
	for deadline := time.Now().Add(3 * time.Second); ; {
		buf.Reset()
		_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
		if !strings.Contains(buf.String(), "hexeract/adapters/sqs.") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("adapter goroutines still running after Close:\n%s", buf.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type sqsAttrValue = types.MessageAttributeValue

// testLogger logs the adapter's errors and warnings through t.Log.
func testLogger(t testing.TB) watermill.LoggerAdapter {
	return watermill.NewSlogLoggerWithLevelMapping(slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})), nil)
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
