package amqp_test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/hexeract/hexeract/adapters/amqp"
	"github.com/hexeract/hexeract/adapters/internal/suite"
	"github.com/hexeract/hexeract/internal/testenv"
)

// TestPublisherSurvivesConnectionKills has RabbitMQ close the publisher's
// connection (rabbitmqctl close_connection) again and again while sixteen
// goroutines publish through a pool of two channels. Each time, publishing
// must resume, no Publish may block, and Close must return cleanly at the
// end. On watermill-amqp's own pooled publisher the pool loses a channel
// whenever one cannot be reopened during the reconnect, and publishing then
// blocks for good.
func TestPublisherSurvivesConnectionKills(t *testing.T) {
	rawURL := testenv.AMQPURL(t)
	suite.BrokerInUse(t)
	name := "hexeract-kill-test-" + testenv.Suffix()
	pub, err := amqp.NewPublisher(amqp.Config{URL: rawURL, ChannelPoolSize: 2, ConnectionName: name,
		ReconnectMaxInterval: 300 * time.Millisecond}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	topic := "hexeract.kill." + testenv.Suffix()

	var (
		ok, failed atomic.Int64
		stop       = make(chan struct{})
		wg         sync.WaitGroup
		lastReturn atomic.Int64 // unix nanoseconds of the latest Publish return
	)
	for range 16 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := pub.Publish(topic, message.NewMessage(watermill.NewUUID(), []byte(`{}`)))
				lastReturn.Store(time.Now().UnixNano())
				if err != nil {
					failed.Add(1)
					time.Sleep(time.Millisecond)
					continue
				}
				ok.Add(1)
			}
		})
	}

	const kills = 6
	for i := range kills {
		before := ok.Load()
		waitFor(t, 20*time.Second, fmt.Sprintf("a Publish to succeed before kill %d", i+1), func() bool { return ok.Load() > before+50 })
		conn := connectionNamed(t, name)
		if out, err := suite.Run(30*time.Second, "rabbitmqctl close_connection '"+conn+"' 'hexeract test: connection killed'"); err != nil {
			t.Fatalf("close_connection: %v\n%s", err, out)
		}
	}
	before := ok.Load()
	waitFor(t, 20*time.Second, "a Publish to succeed after the last kill", func() bool { return ok.Load() > before+50 })
	close(stop)

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("Publish calls still blocked 20s after the publishers were told to stop (last return %s ago)",
			time.Since(time.Unix(0, lastReturn.Load())).Round(time.Millisecond))
	}
	if err := pub.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := pub.Publish(topic, message.NewMessage(watermill.NewUUID(), nil)); err == nil {
		t.Error("Publish after Close succeeded")
	}
	t.Logf("%d connection kills: %d publishes confirmed, %d refused while the connection was down", kills, ok.Load(), failed.Load())
}

// connectionNamed returns RabbitMQ's name for the client connection whose
// connection_name property is name (its Erlang pid), waiting for it to be (re)connected.
func connectionNamed(t *testing.T, name string) string {
	t.Helper()
	var found string
	waitFor(t, 20*time.Second, "connection "+name+" to be listed", func() bool {
		out, err := suite.Run(30*time.Second, "rabbitmqctl list_connections pid client_properties state -q --no-table-headers")
		if err != nil {
			return false
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, name) && strings.HasSuffix(strings.TrimSpace(line), "running") {
				found, _, _ = strings.Cut(line, "\t")
				return true
			}
		}
		return false
	})
	return found
}

func waitFor(t *testing.T, max time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(max)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", max, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
