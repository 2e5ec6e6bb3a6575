package postgres_test

import (
	"testing"

	"github.com/hexeract/hexeract/store/storetest"
)

func TestScheduler(t *testing.T)      { storetest.RunScheduler(t, harness()) }
func BenchmarkScheduler(b *testing.B) { storetest.BenchScheduler(b, harness()) }
