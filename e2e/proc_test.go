package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
	buildDir  string
)

// serviceBinary builds e2e/cmd/e2eservice once per test binary run.
func serviceBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "hexeract-e2e-bin-")
		if buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "e2eservice")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", "build", "-o", buildBin, "./cmd/e2eservice").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./e2e/cmd/e2eservice: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// proc is one e2eservice process; it can be killed and started again with
// the same arguments. Its stdout and stderr go to one log file, appended to
// across restarts, kept for the password scan.
type proc struct {
	t    *testing.T
	name string
	bin  string
	args []string
	log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	runs int
}

func newProc(t *testing.T, dir, name, bin string, args ...string) *proc {
	p := &proc{t: t, name: name, bin: bin, args: args, log: filepath.Join(dir, name+".log")}
	t.Cleanup(func() { p.kill() }) // never leave a process behind
	return p
}

// start starts the process; it fails the test if it cannot.
func (p *proc) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.runs++
	p.mu.Unlock()
}

func (p *proc) current() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.done
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	cmd, done := p.current()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// stop sends SIGTERM and waits up to 20 s, then kills.
func (p *proc) stop() {
	cmd, done := p.current()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		p.t.Errorf("%s did not stop within 20 s of SIGTERM; killing it", p.name)
		p.kill()
	}
}

// exited reports whether the current run has ended, and how.
func (p *proc) exited() (bool, string) {
	cmd, done := p.current()
	select {
	case <-done:
		return true, cmd.ProcessState.String()
	default:
		return false, ""
	}
}

// wait waits for the process to exit by itself, up to d.
func (p *proc) wait(d time.Duration) error {
	cmd, done := p.current()
	select {
	case <-done:
		if !cmd.ProcessState.Success() {
			return fmt.Errorf("%s exited with %s; log:\n%s", p.name, cmd.ProcessState, p.tail(40))
		}
		return nil
	case <-time.After(d):
		return fmt.Errorf("%s still running after %s; log:\n%s", p.name, d, p.tail(40))
	}
}

// waitLog waits until the log has count occurrences of s (lines written
// across all runs), up to d; it fails early when the process exited.
func (p *proc) waitLog(s string, count int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		b, _ := os.ReadFile(p.log)
		if bytes.Count(b, []byte(s)) >= count {
			return nil
		}
		if gone, how := p.exited(); gone {
			return fmt.Errorf("%s exited (%s) before logging %q; log:\n%s", p.name, how, s, p.tail(40))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not log %q within %s; log:\n%s", p.name, s, d, p.tail(40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tail returns the last n lines of the log.
func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// runCmd runs a shell command bounded by timeout and returns its output.
func runCmd(timeout time.Duration, command string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", "-c", command).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", command, err, out)
	}
	return string(out), nil
}
