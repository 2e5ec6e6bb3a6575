package main

import (
	"net/url"
	"strings"
	"testing"

	"github.com/hexeract/hexeract/internal/testenv"
)

// TestDatabaseURLQueryPasswordNeverPrinted checks that a password given as a
// query parameter of the database URL (which pgx accepts, as libpq does)
// stays out of the error on an unreachable host, a database the server
// refuses, and a URL pgx cannot parse.
func TestDatabaseURLQueryPasswordNeverPrinted(t *testing.T) {
	real, err := url.Parse(testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	refused := *real
	refused.Path = "/no_such_db_" + testenv.Suffix()
	q := refused.Query()
	q.Set("password", "s3cret-q")
	q.Set("sslpassword", "s3cret-ssl")
	refused.RawQuery = q.Encode()
	for _, u := range []string{
		"postgres://postgres@127.0.0.1:1/db?password=s3cret-q&connect_timeout=2",
		"postgres://postgres@127.0.0.1:1/db?sslmode=disable&sslpassword=s3cret-ssl&password=s3cret-q&connect_timeout=2",
		"postgres://postgres:s3cret-u@127.0.0.1:1/db?password=s3cret-q&pool_max_conns=abc",
		refused.String(),
	} {
		_, _, err := runOutboxCLI(t, "outbox", "status", "--database-url", u)
		if err == nil {
			t.Fatalf("%s: no error", u)
		}
		if msg := err.Error(); strings.Contains(msg, "s3cret") || !strings.Contains(msg, "connect to postgres://") {
			t.Errorf("error leaks a password or names no database: %s", msg)
		}
	}
}
