package amqp_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/hexeract/hexeract/adapters/amqp"
	"github.com/hexeract/hexeract/adapters/internal/suite"
	"github.com/hexeract/hexeract/internal/testenv"
)

// TestBrokerRestart stops and starts the RabbitMQ application on the machine
// (rabbitmqctl stop_app / start_app, the broker is down for a few seconds)
// while messages flow, and checks that the consumer resumes and receives
// every message the broker confirmed. It holds suite.BrokerRestartLock so
// no other restart test runs at the same time; the start_app in t.Cleanup
// brings the broker back even when the test fails. Other tests using
// RabbitMQ at that moment see a short outage, which the adapters ride out
// by reconnecting.
func TestBrokerRestart(t *testing.T) {
	rawURL := testenv.AMQPURL(t)
	suite.BrokerRestartLock(t, 3*time.Minute)
	u, _ := url.Parse(rawURL)
	addr := u.Host
	t.Cleanup(func() {
		if out, err := suite.Run(90*time.Second, "rabbitmqctl start_app && rabbitmqctl await_startup"); err != nil {
			t.Errorf("restoring RabbitMQ: %v\n%s\nstart it with: %s", err, out, testenv.StartRabbitMQ)
		}
	})

	cfg := amqp.Config{URL: rawURL, Group: "restart", ReconnectMaxInterval: time.Second}
	pub, sub, err := amqp.New(cfg, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	defer sub.Close()

	topic := "hexeract.restart." + testenv.Suffix()
	flow := suite.RestartWhileFlowing(t, pub, sub, topic, 400, 2*time.Minute, func() error {
		if out, err := suite.Run(60*time.Second, "rabbitmqctl stop_app"); err != nil {
			return errWithOutput(err, out)
		}
		if err := suite.WaitPort(addr, false, 30*time.Second); err != nil {
			return err
		}
		if out, err := suite.Run(90*time.Second, "rabbitmqctl start_app && rabbitmqctl await_startup"); err != nil {
			return errWithOutput(err, out)
		}
		return suite.WaitPort(addr, true, 30*time.Second)
	})
	t.Logf("RabbitMQ restart: %+v", flow)
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
