package sqlite_test

import (
	"testing"

	"github.com/hexeract/hexeract/store/storetest"
)

func TestSaga(t *testing.T) { storetest.RunSaga(t, harness()) }
