package suite

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// LockFile is the file that serialises broker-restart tests across test
// processes (go test runs packages in parallel).
const LockFile = "/tmp/hexeract-broker-restart.lock"

// BrokerRestartLock takes an exclusive lock that every broker-restart test
// holds, so only one broker is down at a time on the machine and no test
// holding [BrokerInUse] runs meanwhile, and releases it when the test ends.
// It fails the test after waitMax.
func BrokerRestartLock(t *testing.T, waitMax time.Duration) {
	t.Helper()
	flock(t, syscall.LOCK_EX, waitMax)
}

// BrokerInUse takes the broker-restart lock shared, for the duration of a
// test that needs RabbitMQ or NATS up throughout: such tests run together,
// but never while a restart test has a broker down. Tests in other packages
// can take it too.
func BrokerInUse(t *testing.T) {
	t.Helper()
	flock(t, syscall.LOCK_SH, 3*time.Minute)
}

func flock(t *testing.T, how int, waitMax time.Duration) {
	t.Helper()
	f, err := os.OpenFile(LockFile, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("broker-restart lock: %v", err)
	}
	deadline := time.Now().Add(waitMax)
	for {
		err = syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = f.Close()
			t.Fatalf("broker-restart lock %s still held by another test after %s", LockFile, waitMax)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	})
}

// Run runs a shell command with a timeout and returns its combined output.
func Run(timeout time.Duration, command string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", "-c", command).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w", command, err)
	}
	return string(out), nil
}

// WaitPort waits until addr accepts (up=true) or refuses (up=false) TCP
// connections, up to max.
func WaitPort(addr string, up bool, max time.Duration) error {
	deadline := time.Now().Add(max)
	for {
		conn, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err == nil {
			_ = conn.Close()
		}
		if (err == nil) == up {
			return nil
		}
		if time.Now().After(deadline) {
			state := "up"
			if !up {
				state = "down"
			}
			return fmt.Errorf("%s not %s after %s", addr, state, max)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
