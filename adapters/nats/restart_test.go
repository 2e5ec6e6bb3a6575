package nats_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/hexeract/hexeract/adapters/internal/suite"
	"github.com/hexeract/hexeract/adapters/nats"
	"github.com/hexeract/hexeract/internal/testenv"
)

// stopNATS stops the machine's nats-server (SIGTERM, waiting up to 10s for it to exit).
const stopNATS = "start-stop-daemon --stop --oknodo --retry 10 --exec /usr/sbin/nats-server"

// TestBrokerRestart stops and restarts the machine's NATS server (its
// JetStream store in /var/lib/nats-server keeps the streams and consumers)
// while messages flow, and checks that the consumer resumes and receives
// every message JetStream acknowledged. It holds suite.BrokerRestartLock so
// no other restart test runs at the same time, and t.Cleanup starts NATS
// again even when the test fails. The outage lasts about a second; other
// tests using NATS at that moment ride it out by reconnecting.
func TestBrokerRestart(t *testing.T) {
	rawURL := testenv.NATSURL(t)
	suite.BrokerRestartLock(t, 3*time.Minute)
	u, _ := url.Parse(rawURL)
	addr := u.Host
	start := func() error {
		if out, err := suite.Run(30*time.Second, testenv.StartNATS); err != nil {
			return errWithOutput(err, out)
		}
		return suite.WaitPort(addr, true, 30*time.Second)
	}
	t.Cleanup(func() {
		if err := start(); err != nil {
			t.Errorf("restoring NATS: %v\nstart it with: %s", err, testenv.StartNATS)
		}
	})

	pub, sub, err := nats.New(nats.Config{URL: rawURL, Group: "restart", AckWait: 3 * time.Second}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	defer sub.Close()

	topic := "hexeract.restart." + testenv.Suffix()
	flow := suite.RestartWhileFlowing(t, pub, sub, topic, 400, 2*time.Minute, func() error {
		if out, err := suite.Run(30*time.Second, stopNATS); err != nil {
			return errWithOutput(err, out)
		}
		if err := suite.WaitPort(addr, false, 10*time.Second); err != nil {
			return err
		}
		time.Sleep(500 * time.Millisecond) // let publishes fail against a down server
		return start()
	})
	t.Logf("NATS restart: %+v", flow)
	if flow.AfterRestart == 0 {
		t.Error("no message was accepted after the restart")
	}
}

type outputError struct {
	err error
	out string
}

func (e outputError) Error() string { return e.err.Error() + ": " + e.out }

func errWithOutput(err error, out string) error { return outputError{err, out} }
