package testenv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// DefaultSQS is the SQS URL of the tests: the fauxqs emulator on loopback.
// HEXERACT_TEST_SQS overrides it (for example with real SQS, a URL without
// an endpoint).
const DefaultSQS = "sqs://test:test@us-east-1/?endpoint=http://127.0.0.1:4566"

// SQSTestServerDir is the emulator's directory, relative to the module root.
const SQSTestServerDir = "adapters/sqs/testserver"

// sqsStartTimeout bounds the emulator's start-up once its packages are
// installed.
const sqsStartTimeout = time.Minute

// SQSURL returns HEXERACT_TEST_SQS or DefaultSQS after making sure its
// endpoint answers: when nothing listens on a loopback endpoint, it installs
// the emulator's Node packages (npm ci, see InstallNodeModules) and starts
// the fauxqs emulator there. The test fails, saying what is missing, when
// that is not possible.
func SQSURL(t testing.TB) string {
	t.Helper()
	u, err := EnsureSQS()
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// EnsureSQS is SQSURL for callers without a testing.TB (a TestMain).
//
// The emulator it starts (adapters/sqs/testserver/server.mjs) runs detached,
// in its own session, and is left running when the tests end, exactly like
// adapters/sqs/testserver/start.sh leaves it: go test runs packages in
// parallel processes, and an emulator owned by one of them would vanish
// under the others. Its pid is in os.TempDir()/hexeract-fauxqs.pid (for
// port 4566; hexeract-fauxqs-PORT.pid otherwise), its output in the .log
// beside it; stop it with kill "$(cat /tmp/hexeract-fauxqs.pid)". An
// exclusive lock on a file in os.TempDir() makes sure concurrent test
// processes start one emulator per port.
func EnsureSQS() (string, error) {
	raw := env("HEXERACT_TEST_SQS", DefaultSQS)
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("HEXERACT_TEST_SQS is not a URL: %v", err)
	}
	endpoint := u.Query().Get("endpoint")
	if endpoint == "" {
		return raw, nil // real SQS: nothing to check or start
	}
	ep, err := url.Parse(endpoint)
	if err != nil || ep.Hostname() == "" {
		return "", fmt.Errorf("HEXERACT_TEST_SQS (%s): endpoint %q is not an http://host:port URL", Redact(raw), endpoint)
	}
	port := ep.Port()
	if port == "" {
		port = "80"
		if ep.Scheme == "https" {
			port = "443"
		}
	}
	addr := net.JoinHostPort(ep.Hostname(), port)
	if err := answers(addr); err == nil {
		return raw, nil
	} else if !isLoopback(ep.Hostname()) {
		return "", fmt.Errorf("the SQS endpoint %s of HEXERACT_TEST_SQS is not reachable: %v; the tests start the fauxqs emulator only on a loopback endpoint (unset HEXERACT_TEST_SQS for the default %s)", endpoint, err, DefaultSQS)
	}
	host := ep.Hostname()
	if host == "localhost" {
		host = "127.0.0.1"
	}
	if err := startFauxqs(host, port); err != nil {
		return "", fmt.Errorf("SQS-compatible server (fauxqs) for %s: %w", endpoint, err)
	}
	return raw, nil
}

// SQSFiles returns the pid and log files of the emulator on port.
func SQSFiles(port string) (pidFile, logFile string) {
	base := "hexeract-fauxqs"
	if port != "4566" {
		base += "-" + port
	}
	base = filepath.Join(os.TempDir(), base)
	return base + ".pid", base + ".log"
}

func startFauxqs(host, port string) error {
	unlock, err := lockFile(filepath.Join(os.TempDir(), "hexeract-fauxqs-"+port+".lock"))
	if err != nil {
		return err
	}
	defer unlock()
	addr := net.JoinHostPort(host, port)
	if answers(addr) == nil { // another test process started it while we waited
		return nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return err
	}
	dir := filepath.Join(root, SQSTestServerDir)
	if err := InstallNodeModules(dir); err != nil {
		return err
	}
	pidFile, logFile := SQSFiles(port)
	logf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer func() { _ = logf.Close() }()
	logStart, _ := logf.Seek(0, 2)
	cmd := exec.Command("node", "server.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HEXERACT_SQS_HOST="+host, "HEXERACT_SQS_PORT="+port)
	cmd.Stdout, cmd.Stderr = logf, logf // stdin is /dev/null: no pipe keeps go test waiting
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start node server.mjs in %s: %v", dir, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	_ = os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)

	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(sqsStartTimeout)
	for {
		select {
		case err := <-exited:
			_ = os.Remove(pidFile)
			return fmt.Errorf("node server.mjs in %s exited (%v) before listening on %s:\n%s", dir, err, addr, logTail(logFile, logStart))
		case <-deadline:
			_ = cmd.Process.Kill()
			_ = os.Remove(pidFile)
			return fmt.Errorf("node server.mjs in %s did not listen on %s within %v:\n%s", dir, addr, sqsStartTimeout, logTail(logFile, logStart))
		case <-tick.C:
			if answers(addr) == nil {
				return nil
			}
		}
	}
}

// answers reports whether something accepts TCP connections on addr.
func answers(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	return conn.Close()
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// logTail returns the last lines the emulator wrote after offset from.
func logTail(path string, from int64) string {
	b, err := os.ReadFile(path)
	if err != nil || from > int64(len(b)) {
		return "(no output)"
	}
	lines := strings.Split(strings.TrimSpace(string(b[from:])), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

// ModuleRoot returns the root directory of the hexeract module, found by
// walking up from the working directory (a test's package directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if f, err := os.Open(filepath.Join(dir, "go.mod")); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if fields := bytes.Fields(sc.Bytes()); len(fields) == 2 && string(fields[0]) == "module" {
					if string(fields[1]) == "github.com/hexeract/hexeract" {
						_ = f.Close()
						return dir, nil
					}
					break
				}
			}
			_ = f.Close()
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("the github.com/hexeract/hexeract module root is not above the working directory; run the tests from inside the repository")
		}
		dir = parent
	}
}
