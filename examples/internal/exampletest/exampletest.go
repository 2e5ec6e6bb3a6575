// Package exampletest helps the examples' tests: a MariaDB database of the
// test's own, and a PostgreSQL that cannot be reached.
package exampletest

import (
	"context"
	"fmt"
	"net"
	neturl "net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hexeract/hexeract/internal/testenv"
	"github.com/hexeract/hexeract/store/mysql"
)

// MariaDBURL creates a database hx_<suffix> on the test MariaDB
// (testenv.MySQLURL) and returns its URL; the database is dropped when the
// test ends.
func MariaDBURL(t testing.TB) string {
	t.Helper()
	base := testenv.MySQLURL(t)
	admin, err := mysql.Open(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	name := "hx_" + testenv.Suffix()
	if _, err := admin.DB().Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.DB().Exec("DROP DATABASE IF EXISTS " + name) })
	u, err := neturl.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// NoPostgres points every way a program could find a PostgreSQL (the libpq
// variables PGHOST and PGPORT, HEXERACT_TEST_POSTGRES) at a closed port of
// 127.0.0.1 and unsets HEXERACT_DATABASE_URL, so a program that opened a
// PostgreSQL connection from them would fail. It returns the closed port.
func NoPostgres(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close() // nothing listens there any more
	t.Setenv("HEXERACT_DATABASE_URL", "")
	t.Setenv("PGHOST", "127.0.0.1")
	t.Setenv("PGPORT", "1")
	t.Setenv("HEXERACT_TEST_POSTGRES", "postgres://postgres@"+addr+"/test?sslmode=disable&connect_timeout=1")
	return port
}

// PostgresSockets watches, until stop is called, the TCP sockets of this
// process connected to port 5432 (the machine's PostgreSQL) or to port,
// sampling every millisecond; stop returns how many distinct sockets it saw.
// It reads /proc (Linux).
func PostgresSockets(t testing.TB, port int) (stop func() int) {
	t.Helper()
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Fatalf("PostgresSockets needs /proc: %v", err)
	}
	ports := map[string]bool{fmt.Sprintf("%04X", 5432): true, fmt.Sprintf("%04X", port): true}
	seen := map[string]bool{}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			for _, inode := range postgresInodes(ports) {
				seen[inode] = true
			}
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return func() int {
		close(done)
		<-finished
		return len(seen)
	}
}

// postgresInodes returns the inodes of this process's sockets whose remote
// port is one of ports (upper-case hex).
func postgresInodes(ports map[string]bool) []string {
	mine := map[string]bool{}
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, fd := range fds {
		link, err := os.Readlink("/proc/self/fd/" + fd.Name())
		if err == nil && strings.HasPrefix(link, "socket:[") {
			mine[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	var out []string
	for _, f := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 10 {
				continue
			}
			remote := fields[2]
			i := strings.LastIndexByte(remote, ':')
			if i < 0 || !ports[remote[i+1:]] || !mine[fields[9]] {
				continue
			}
			out = append(out, fields[9])
		}
	}
	return out
}
