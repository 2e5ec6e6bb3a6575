package main

import (
	"context"
	"testing"

	"github.com/hexeract/hexeract/internal/testenv"
)

func TestExampleRuns(t *testing.T) {
	t.Setenv("HEXERACT_DATABASE_URL", testenv.PostgresURL(t))
	if err := run(context.Background()); err != nil {
		t.Fatal(err)
	}
}
