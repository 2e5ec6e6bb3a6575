package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Tool returns the path of the command-line program name, which the Debian
// package pkg provides. When it is not on PATH and the tests run as root on
// a machine with apt-get, Tool installs pkg first (under a file lock, so
// parallel test packages install it once), as the README's test command
// needs no other step. Where it still cannot be had (not root, no apt-get,
// no package mirror), the test is skipped with a message that names the
// package to install: the program is an independent peer the test compares
// against, not something Hexeract needs.
func Tool(t testing.TB, name, pkg string) string {
	t.Helper()
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	if err := installDebianPackage(pkg); err != nil {
		t.Skipf("%s is not installed and could not be installed (%v): install the Debian package %s (apt-get install -y %s) to run this test; .ci/run does", name, err, pkg, pkg)
	}
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("the Debian package %s was installed but %s is not on PATH (%v)", pkg, name, err)
	}
	return path
}

// installDebianPackage installs pkg with apt-get, refreshing the package
// lists once if the first attempt cannot find it.
func installDebianPackage(pkg string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("installing needs root")
	}
	aptGet, err := exec.LookPath("apt-get")
	if err != nil {
		return fmt.Errorf("no apt-get on PATH")
	}
	unlock, err := lockFile(filepath.Join(os.TempDir(), "hexeract-testenv-apt.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	install := func() ([]byte, error) {
		cmd := exec.CommandContext(ctx, aptGet, "install", "-y", "--no-install-recommends", pkg)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	if _, err := install(); err == nil {
		return nil
	}
	if out, err := exec.CommandContext(ctx, aptGet, "update").CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get update: %v: %s", err, lastLine(out))
	}
	if out, err := install(); err != nil {
		return fmt.Errorf("apt-get install %s: %v: %s", pkg, err, lastLine(out))
	}
	return nil
}

// lastLine is the last non-empty line of out, for an error message.
func lastLine(out []byte) string {
	end := len(out)
	for end > 0 && (out[end-1] == '\n' || out[end-1] == '\r') {
		end--
	}
	start := end
	for start > 0 && out[start-1] != '\n' {
		start--
	}
	return string(out[start:end])
}
