package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// DefaultAMQPManagement is the RabbitMQ management API the tests use to
// remove their queues (HEXERACT_TEST_AMQP_MANAGEMENT overrides it; the
// credentials are those of the AMQP URL).
const DefaultAMQPManagement = "http://127.0.0.1:15672"

// AMQPGroupURL returns the RabbitMQ URL for tests with a consumer group of
// its own (?group=<prefix>-<suffix>), for a test that runs a whole program
// whose topics it does not list. When the test ends, every queue of that
// group is deleted: adapters/amqp names a group's queue "<topic>_<group>",
// so the queues are those whose name ends in "_<group>", found through the
// management API.
func AMQPGroupURL(t testing.TB, prefix string) string {
	t.Helper()
	raw := AMQPURL(t)
	group := prefix + "-" + Suffix()
	AMQPManagementURL(t) // the cleanup below needs it
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("RabbitMQ: bad HEXERACT_TEST_AMQP: %v", err)
	}
	q := u.Query()
	q.Set("group", group)
	u.RawQuery = q.Encode()
	t.Cleanup(func() {
		if err := DeleteAMQPGroupQueues(raw, group); err != nil {
			t.Errorf("remove the queues of group %s: %v", group, err)
		}
	})
	return u.String()
}

// DeleteAMQPGroupQueues deletes the queues of group ("<topic>_<group>") on
// the default virtual host of the RabbitMQ that amqpURL names, through the
// management API.
func DeleteAMQPGroupQueues(amqpURL, group string) error {
	return deleteAMQP(amqpURL, "queues", func(name string) bool { return strings.HasSuffix(name, "_"+group) })
}

// deleteAMQP deletes the queues or exchanges (kind) whose name match
// selects, through the management API.
func deleteAMQP(amqpURL, kind string, match func(name string) bool) error {
	u, err := url.Parse(amqpURL)
	if err != nil {
		return err
	}
	user := u.User.Username()
	pass, _ := u.User.Password()
	api := env("HEXERACT_TEST_AMQP_MANAGEMENT", "")
	if api == "" {
		api = "http://" + net.JoinHostPort(u.Hostname(), "15672")
	}
	vhost := strings.TrimPrefix(u.Path, "/")
	if vhost == "" {
		vhost = "/"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	call := func(method, path string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, method, api+path, nil)
		if err != nil {
			return nil, err
		}
		req.SetBasicAuth(user, pass)
		return http.DefaultClient.Do(req)
	}
	base := "/api/" + kind + "/" + url.PathEscape(vhost)
	resp, err := call(http.MethodGet, base+"?columns=name")
	if err != nil {
		return fmt.Errorf("RabbitMQ management API at %s: %w", api, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("RabbitMQ management API at %s: list %s: %s", api, kind, resp.Status)
	}
	var items []struct{ Name string }
	if err := json.NewDecoder(resp.Body).Decode(&items); err != nil {
		return err
	}
	for _, it := range items {
		if it.Name == "" || !match(it.Name) {
			continue
		}
		r, err := call(http.MethodDelete, base+"/"+url.PathEscape(it.Name))
		if err != nil {
			return err
		}
		_ = r.Body.Close()
		if r.StatusCode/100 != 2 && r.StatusCode != http.StatusNotFound {
			return fmt.Errorf("delete %s %s: %s", kind, it.Name, r.Status)
		}
	}
	return nil
}

// DeleteAMQPExchanges deletes the exchanges whose name ends in suffix on the
// default virtual host of the RabbitMQ that amqpURL names (adapters/amqp
// names a topic's exchange after the topic), through the management API.
func DeleteAMQPExchanges(amqpURL, suffix string) error {
	return deleteAMQP(amqpURL, "exchanges", func(name string) bool { return strings.HasSuffix(name, suffix) })
}

// AMQPManagementURL returns the base URL of the RabbitMQ management API of
// the broker the tests use (HEXERACT_TEST_AMQP_MANAGEMENT, else port 15672
// of the AMQP URL's host), without credentials. When nothing answers there
// and the broker runs on this machine, it enables the management plugin
// first (`rabbitmq-plugins enable rabbitmq_management`, under a file lock so
// parallel test packages do it once) and waits for the API: the README's
// test command needs no other step. Where that is impossible, the test
// fails with the command to run.
func AMQPManagementURL(t testing.TB) string {
	t.Helper()
	api, err := managementBase(AMQPURL(t))
	if err != nil {
		t.Fatalf("RabbitMQ management API: %v", err)
	}
	if err := ensureManagement(api); err != nil {
		t.Fatalf("RabbitMQ management API at %s: %v; enable it with `rabbitmq-plugins enable rabbitmq_management` (.ci/run does)", api, err)
	}
	return api
}

// managementBase is the management API's base URL for amqpURL.
func managementBase(amqpURL string) (string, error) {
	if api := env("HEXERACT_TEST_AMQP_MANAGEMENT", ""); api != "" {
		return strings.TrimSuffix(api, "/"), nil
	}
	u, err := url.Parse(amqpURL)
	if err != nil {
		return "", fmt.Errorf("bad HEXERACT_TEST_AMQP: %v", err)
	}
	return "http://" + net.JoinHostPort(u.Hostname(), "15672"), nil
}

// ensureManagement makes sure something answers at api, enabling the
// plugin of a local broker when nothing does.
func ensureManagement(api string) error {
	u, err := url.Parse(api)
	if err != nil {
		return err
	}
	answers := func() bool {
		c, err := net.DialTimeout("tcp", u.Host, time.Second)
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	}
	if answers() {
		return nil
	}
	if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("nothing answers, and the broker is not on this machine")
	}
	plugins, err := exec.LookPath("rabbitmq-plugins")
	if err != nil {
		return fmt.Errorf("nothing answers, and rabbitmq-plugins is not on PATH")
	}
	unlock, err := lockFile(filepath.Join(os.TempDir(), "hexeract-testenv-rabbitmq-management.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	if !answers() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ctx, plugins, "enable", "rabbitmq_management").CombinedOutput(); err != nil {
			return fmt.Errorf("rabbitmq-plugins enable rabbitmq_management: %v: %s", err, lastLine(out))
		}
	}
	for deadline := time.Now().Add(time.Minute); !answers(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("the management plugin was enabled but nothing answers after 1 minute")
		}
	}
	return nil
}
