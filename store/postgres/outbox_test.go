package postgres_test

import (
	"testing"

	"github.com/hexeract/hexeract/store/storetest"
)

func TestOutbox(t *testing.T) { storetest.RunOutbox(t, harness()) }

func TestInbox(t *testing.T) { storetest.RunInbox(t, harness()) }
