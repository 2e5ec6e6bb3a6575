package mysql_test

import (
	"testing"

	"github.com/hexeract/hexeract/store/storetest"
)

func TestDeadLetter(t *testing.T) { storetest.RunDeadLetter(t, harness()) }
