package main

import (
	"context"
	"errors"
	"os"

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
