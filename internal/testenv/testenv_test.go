package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// fatalRecorder is a testing.TB whose Fatal/Fatalf record the message and
// end the calling goroutine, so a helper's failure can be asserted.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = strings.TrimSpace(fmt.Sprintf(format, args...))
	runtime.Goexit()
}

func (r *fatalRecorder) Fatal(args ...any) {
	r.msg = strings.TrimSpace(fmt.Sprintln(args...))
	runtime.Goexit()
}

// fatalOf runs f with a fatalRecorder and returns the message it failed
// with ("" when it did not fail).
func fatalOf(t *testing.T, f func(tb testing.TB)) string {
	r := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); f(r) }()
	<-done
	return r.msg
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	return port
}

func TestMySQLURL(t *testing.T) {
	t.Setenv("HEXERACT_TEST_MYSQL", "")
	if got := MySQLURL(t); got != DefaultMySQL {
		t.Errorf("MySQLURL = %q, want the default %q", got, DefaultMySQL)
	}
	down := "mysql://root:pw@127.0.0.1:" + closedPort(t) + "/test"
	t.Setenv("HEXERACT_TEST_MYSQL", down)
	msg := fatalOf(t, func(tb testing.TB) { MySQLURL(tb) })
	for _, want := range []string{"MariaDB", "HEXERACT_TEST_MYSQL", StartMariaDB} {
		if !strings.Contains(msg, want) {
			t.Errorf("failure for an unreachable server does not name %q: %s", want, msg)
		}
	}
	if strings.Contains(msg, ":pw@") {
		t.Errorf("failure shows the password: %s", msg)
	}
}

// writeNodeProject writes a package.json and package-lock.json without
// dependencies (npm ci needs no registry for it) named name.
func writeNodeProject(t *testing.T, dir, name string) {
	t.Helper()
	t.Cleanup(func() { _ = os.Remove(npmLockFile(dir)) })
	pkg := `{"name": "` + name + `", "version": "1.0.0", "private": true}`
	lock := `{"name": "` + name + `", "version": "1.0.0", "lockfileVersion": 3, "requires": true,
  "packages": {"": {"name": "` + name + `", "version": "1.0.0"}}}`
	if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(pkg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "package-lock.json"), []byte(lock), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestInstallNodeModulesOncePerLock checks that npm ci runs on the first
// call, not again while package-lock.json is unchanged (a file npm ci would
// delete survives), and again once it changes.
func TestInstallNodeModulesOncePerLock(t *testing.T) {
	dir := t.TempDir()
	writeNodeProject(t, dir, "hexeract-testenv-a")
	if err := InstallNodeModules(dir); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "node_modules", "marker")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatalf("node_modules after npm ci: %v", err)
	}
	// Concurrent calls with the lock unchanged: none reinstalls.
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if err := InstallNodeModules(dir); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("npm ci ran again with package-lock.json unchanged: %v", err)
	}
	writeNodeProject(t, dir, "hexeract-testenv-b")
	if err := InstallNodeModules(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("npm ci did not run after package-lock.json changed (marker: %v)", err)
	}
}

func TestNodeModulesWithoutNode(t *testing.T) {
	dir := t.TempDir()
	writeNodeProject(t, dir, "hexeract-testenv-c")
	t.Setenv("PATH", t.TempDir())
	msg := fatalOf(t, func(tb testing.TB) { NodeModules(tb, dir) })
	for _, want := range []string{"node and npm not found on PATH", dir, "apt-get install nodejs npm"} {
		if !strings.Contains(msg, want) {
			t.Errorf("failure without node does not say %q: %s", want, msg)
		}
	}
}

func TestNodeModulesNpmCIFails(t *testing.T) {
	dir := t.TempDir()
	t.Cleanup(func() { _ = os.Remove(npmLockFile(dir)) })
	if err := os.WriteFile(filepath.Join(dir, "package-lock.json"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	msg := fatalOf(t, func(tb testing.TB) { NodeModules(tb, dir) })
	if !strings.Contains(msg, "npm ci in "+dir+" failed") {
		t.Errorf("failure of npm ci: %s", msg)
	}
}

// TestEnsureSQSStartsEmulator points HEXERACT_TEST_SQS at a loopback port
// where nothing listens: concurrent callers start exactly one emulator
// there, which answers SQS calls, and the URL is returned unchanged.
func TestEnsureSQSStartsEmulator(t *testing.T) {
	port := closedPort(t)
	raw := "sqs://test:test@us-east-1/?endpoint=http://127.0.0.1:" + port
	t.Setenv("HEXERACT_TEST_SQS", raw)
	pidFile, logFile := SQSFiles(port)
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				_ = syscall.Kill(pid, syscall.SIGTERM) // the emulator this test started
				WaitFor(t, 10*time.Second, "the test's emulator to stop", func() bool { return syscall.Kill(pid, 0) != nil })
			}
		}
		_ = os.Remove(pidFile)
		_ = os.Remove(logFile)
		_ = os.Remove(filepath.Join(os.TempDir(), "hexeract-fauxqs-"+port+".lock"))
	})

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if got, err := EnsureSQS(); err != nil || got != raw {
				t.Errorf("EnsureSQS = %q, %v; want %q", got, err, raw)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	client := sqs.New(sqs.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String("http://127.0.0.1:" + port),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("testenv-" + Suffix())})
	if err != nil {
		t.Fatalf("CreateQueue on the started emulator: %v", err)
	}
	if _, err := client.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: q.QueueUrl}); err != nil {
		t.Fatalf("DeleteQueue: %v", err)
	}
	log, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(log), "listening on"); n != 1 || strings.Contains(string(log), "EADDRINUSE") {
		t.Errorf("4 concurrent callers started %d emulators; log:\n%s", n, log)
	}
}

func TestSQSURLUnreachableRemote(t *testing.T) {
	t.Setenv("HEXERACT_TEST_SQS", "sqs://test:test@us-east-1/?endpoint=http://192.0.2.1:4566") // TEST-NET-1: never answers
	msg := fatalOf(t, func(tb testing.TB) { SQSURL(tb) })
	if !strings.Contains(msg, "not reachable") || !strings.Contains(msg, "only on a loopback endpoint") {
		t.Errorf("failure for an unreachable remote endpoint: %s", msg)
	}
}

func TestSQSURLWithoutEndpoint(t *testing.T) {
	raw := "sqs://eu-west-1/"
	t.Setenv("HEXERACT_TEST_SQS", raw)
	if got := SQSURL(t); got != raw {
		t.Errorf("SQSURL = %q, want %q (real SQS: nothing to start)", got, raw)
	}
}
