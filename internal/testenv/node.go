package testenv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// NodeModules makes sure the Node packages of dir (a directory with a
// package.json and the package-lock.json that pins them) are installed,
// running `npm ci` there when they are not, and returns dir. The test fails,
// saying what is missing, when node or npm is not installed or npm ci fails.
func NodeModules(t testing.TB, dir string) string {
	t.Helper()
	if err := InstallNodeModules(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// stampFile, inside node_modules, holds the SHA-256 of the package-lock.json
// that the last successful npm ci installed.
const stampFile = ".hexeract-lock-sha256"

// npmCITimeout bounds one npm ci (a first install downloads the packages).
const npmCITimeout = 10 * time.Minute

// InstallNodeModules is NodeModules for callers without a testing.TB (a
// TestMain). npm ci runs only when node_modules was not installed from the
// current package-lock.json (a stamp in node_modules records its hash), so
// it runs once on a fresh clone and again only when the lock file changes.
// An exclusive lock on a file in os.TempDir() serialises installs of one
// directory across the test processes that go test runs in parallel.
func InstallNodeModules(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := needNode(dir); err != nil {
		return err
	}
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return fmt.Errorf("the Node packages of %s are pinned by its package-lock.json, which cannot be read: %v", dir, err)
	}
	sum := sha256.Sum256(lock)
	want := hex.EncodeToString(sum[:])
	stamp := filepath.Join(dir, "node_modules", stampFile)
	installed := func() bool {
		got, err := os.ReadFile(stamp)
		return err == nil && string(got) == want
	}
	if installed() {
		return nil
	}
	unlock, err := lockFile(npmLockFile(dir))
	if err != nil {
		return err
	}
	defer unlock()
	if installed() { // another test process installed them while we waited
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), npmCITimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	cmd.WaitDelay = 10 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm ci in %s failed (%v); it installs the Node packages pinned by package-lock.json from the npm registry:\n%s\nrun it by hand to see why: cd %s && npm ci", dir, err, bytes.TrimSpace(out), dir)
	}
	// A lock without dependencies installs nothing, not even node_modules.
	if err := os.MkdirAll(filepath.Dir(stamp), 0o755); err != nil {
		return fmt.Errorf("npm ci in %s: %v", dir, err)
	}
	if err := os.WriteFile(stamp, []byte(want), 0o644); err != nil {
		return fmt.Errorf("npm ci in %s: %v", dir, err)
	}
	return nil
}

// npmLockFile is the lock file of installs into dir, an absolute path.
func npmLockFile(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return filepath.Join(os.TempDir(), "hexeract-npm-"+hex.EncodeToString(sum[:8])+".lock")
}

// needNode reports an error naming what to install when node or npm is
// not on PATH.
func needNode(dir string) error {
	var missing []string
	for _, bin := range []string{"node", "npm"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%s not found on PATH: the Node program in %s needs Node.js 20 or later with npm; install them (Debian: apt-get install nodejs npm) and run the tests again",
		strings.Join(missing, " and "), dir)
}

// lockFile takes an exclusive flock on path, creating it, and returns the
// function that releases it. The kernel releases it too if the process dies.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("lock file: %v", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("lock %s: %v", path, err)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); _ = f.Close() }, nil
}
