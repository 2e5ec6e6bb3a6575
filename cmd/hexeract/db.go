package main

import (
	"context"
	"errors"
	"net/url"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
)

// databaseURL is the --database-url flag shared by every database subcommand.
var databaseURL string

func init() {
	rootCmd.PersistentFlags().StringVar(&databaseURL, "database-url", "",
		"PostgreSQL URL (default $HEXERACT_DATABASE_URL)")
}

// connectDB opens a pool on the database named by --database-url or
// HEXERACT_DATABASE_URL. Errors never contain the password.
func connectDB(cmd *cobra.Command) (*pgxpool.Pool, error) {
	u := databaseURL
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

// redactURL returns u with its password replaced, or a placeholder when u
// does not parse (a key=value DSN, for example).
func redactURL(u string) string {
	parsed, err := url.Parse(u)
	if err != nil || parsed.Scheme == "" {
		return "(database)"
	}
	return parsed.Redacted()
}

// redactText removes the password of rawURL from text.
func redactText(text, rawURL string) string {
	if parsed, err := url.Parse(rawURL); err == nil && parsed.User != nil {
		if pw, ok := parsed.User.Password(); ok && pw != "" {
			text = strings.ReplaceAll(text, pw, "xxxxx")
		}
	}
	return text
}
