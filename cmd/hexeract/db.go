package main

import (
	"context"
	"errors"
	"net/url"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/hexeract/hexeract/store"
	"github.com/hexeract/hexeract/store/storeurl"
)

// databaseURL returns --database-url or HEXERACT_DATABASE_URL.
func databaseURL(cmd *cobra.Command) (string, error) {
	var u string
	if f := cmd.Flag("database-url"); f != nil { // a persistent flag of the root command
		u = f.Value.String()
	}
	if u == "" {
		u = os.Getenv("HEXERACT_DATABASE_URL")
	}
	if u == "" {
		return "", errors.New("no database: pass --database-url or set HEXERACT_DATABASE_URL")
	}
	return u, nil
}

// openStore opens the store named by --database-url or
// HEXERACT_DATABASE_URL: postgres://, mysql:// or sqlite:///path.db.
// Errors never contain the password.
func openStore(cmd *cobra.Command) (store.Store, error) {
	u, err := databaseURL(cmd)
	if err != nil {
		return nil, err
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return storeurl.Open(ctx, u)
}

// connectDB opens a pool on the database named by --database-url or
// HEXERACT_DATABASE_URL. Errors never contain the password.
func connectDB(cmd *cobra.Command) (*pgxpool.Pool, error) {
	var u string
	if f := cmd.Flag("database-url"); f != nil { // a persistent flag of the root command
		u = f.Value.String()
	}
	if u == "" {
		u = os.Getenv("HEXERACT_DATABASE_URL")
	}
	if u == "" {
		return nil, errors.New("no database: pass --database-url or set HEXERACT_DATABASE_URL")
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	pool, err := pgxpool.New(ctx, u)
	if err == nil {
		err = pool.Ping(ctx)
		if err != nil {
			pool.Close()
		}
	}
	if err != nil {
		return nil, errors.New("connect to " + redactURL(u) + ": " + redactText(err.Error(), u))
	}
	return pool, nil
}

// redactURL returns u with its password, and the value of any password
// query parameter (password, sslpassword), replaced, or a placeholder when u
// does not parse (a key=value DSN, for example).
func redactURL(u string) string {
	parsed, err := url.Parse(u)
	if err != nil || parsed.Scheme == "" {
		return "(database)"
	}
	if q := parsed.Query(); len(secretParams(q)) > 0 {
		for k := range q {
			if isSecretParam(k) {
				q[k] = []string{"xxxxx"}
			}
		}
		parsed.RawQuery = q.Encode()
	}
	return parsed.Redacted()
}

// redactText removes the passwords of rawURL (in its user information or
// its query) from text.
func redactText(text, rawURL string) string {
	parsed, err := url.Parse(rawURL)
	if err != nil {
		return text
	}
	secrets := secretParams(parsed.Query())
	if parsed.User != nil {
		if pw, ok := parsed.User.Password(); ok {
			secrets = append(secrets, pw)
		}
	}
	for _, s := range secrets {
		if s != "" {
			text = strings.ReplaceAll(text, s, "xxxxx")
		}
	}
	return text
}

// isSecretParam reports whether the URL query parameter k carries a
// password (libpq and pgx accept password and sslpassword there).
func isSecretParam(k string) bool {
	return strings.Contains(strings.ToLower(k), "password")
}

// secretParams returns the values of the password parameters of q.
func secretParams(q url.Values) []string {
	var out []string
	for k, vs := range q {
		if isSecretParam(k) {
			out = append(out, vs...)
		}
	}
	return out
}

// withPool connects, runs fn and closes the pool.
func withPool(cmd *cobra.Command, fn func(context.Context, *pgxpool.Pool) error) error {
	pool, err := connectDB(cmd)
	if err != nil {
		return err
	}
	defer pool.Close()
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return fn(ctx, pool)
}
