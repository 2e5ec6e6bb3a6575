package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hexeract/hexeract/internal/testenv"
)

// restartLockFile serialises service restarts across test processes; the
// adapters' broker-restart tests use the same file.
const restartLockFile = "/tmp/hexeract-broker-restart.lock"

var (
	lockMu   sync.Mutex
	lockFile *os.File // open while this process holds the lock
	lockRefs int
)

// brokerLock takes the machine-wide restart lock exclusively until the test
// ends. The lock is held per process and counted: flock locks belong to the
// open file, so a second flock from this process would wait for itself.
func brokerLock(t *testing.T) {
	t.Helper()
	lockMu.Lock()
	defer lockMu.Unlock()
	if lockRefs == 0 {
		f, err := os.OpenFile(restartLockFile, os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			t.Fatalf("restart lock: %v", err)
		}
		deadline := time.Now().Add(5 * time.Minute)
		for syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			if time.Now().After(deadline) {
				f.Close()
				t.Fatalf("restart lock %s held by another test for 5 minutes", restartLockFile)
			}
			time.Sleep(100 * time.Millisecond)
		}
		lockFile = f
	}
	lockRefs++
	t.Cleanup(func() {
		lockMu.Lock()
		defer lockMu.Unlock()
		lockRefs--
		if lockRefs == 0 {
			_ = syscall.Flock(int(lockFile.Fd()), syscall.LOCK_UN)
			lockFile.Close()
			lockFile = nil
		}
	})
}

// servicesSteady holds the restart lock shared for the rest of the test, so
// no broker-restart test (this package's full campaign, or the adapters')
// stops a service under it; restart tests take it exclusively and wait.
// In the full campaign, which restarts services itself, it takes the lock
// exclusively for the whole test instead, so no other test restarts a
// service in the middle of it.
func servicesSteady(t *testing.T) {
	t.Helper()
	if full() {
		brokerLock(t)
		return
	}
	f, err := os.OpenFile(restartLockFile, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("restart lock: %v", err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB) != nil {
		if time.Now().After(deadline) {
			f.Close()
			t.Fatalf("restart lock %s held exclusively by another test for 5 minutes", restartLockFile)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() })
}

func restartRabbitMQ(t *testing.T) error {
	brokerLock(t)
	start := "rabbitmqctl start_app && rabbitmqctl await_startup"
	t.Cleanup(func() {
		if _, err := runCmd(90*time.Second, start); err != nil {
			t.Errorf("restoring RabbitMQ: %v; start it with: %s", err, testenv.StartRabbitMQ)
		}
	})
	if _, err := runCmd(60*time.Second, "rabbitmqctl stop_app"); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	_, err := runCmd(90*time.Second, start)
	return err
}

const stopNATS = "start-stop-daemon --stop --oknodo --retry 10 --exec /usr/sbin/nats-server"

func restartNATS(t *testing.T) error {
	brokerLock(t)
	t.Cleanup(func() {
		if _, err := runCmd(30*time.Second, testenv.StartNATS+" && for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && exit 0; sleep 0.1; done; exit 1"); err != nil {
			t.Errorf("restoring NATS: %v; start it with: %s", err, testenv.StartNATS)
		}
	})
	if _, err := runCmd(30*time.Second, stopNATS); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	_, err := runCmd(30*time.Second, testenv.StartNATS+" && for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && exit 0; sleep 0.1; done; exit 1")
	return err
}

// scanDirForPassword fails the test when any file in dir (the process
// logs) contains testPassword; it returns how many bytes it scanned.
func scanDirForPassword(t *testing.T, dir string) int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		n += int64(len(b))
		if i := bytes.Index(b, []byte(testPassword)); i >= 0 {
			t.Errorf("the DSN password appears in %s: %q", e.Name(), b[max(0, i-200):min(len(b), i+50)])
		}
	}
	return n
}
