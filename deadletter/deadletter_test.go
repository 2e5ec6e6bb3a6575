package deadletter_test

import (
	"testing"

	"github.com/hexeract/hexeract/deadletter"
	"github.com/hexeract/hexeract/store"
)

func TestCheckTable(t *testing.T) {
	for _, c := range []struct {
		dialect store.Dialect
		name    string
		ok      bool
	}{
		{store.Postgres, "dl", true},
		{store.Postgres, "ops.dl", true},
		{store.MySQL, "ops.dl", true},
		{store.SQLite, "ops.dl", false},
		{store.SQLite, "dl", true},
		{store.Postgres, `dl"; drop table x; --`, false},
		{store.Postgres, "Dl", false},
		{store.Postgres, "a_very_long_dead_letter_table_name_that_goes_past_fifty", false},
	} {
		_, err := deadletter.CheckTable(c.dialect, c.name)
		if (err == nil) != c.ok {
			t.Errorf("CheckTable(%s, %q) = %v, want ok %v", c.dialect, c.name, err, c.ok)
		}
	}
}

func TestGroupKey(t *testing.T) {
	for _, k := range []deadletter.GroupKey{{FaultType: "*errors.errorString", Handler: "ship"}, {FaultType: "panic"}, {FaultType: "*pkg.Err", Handler: "orders@billing"}} {
		got, err := deadletter.ParseGroupKey(k.String())
		if err != nil || got != k {
			t.Errorf("ParseGroupKey(%q) = %+v, %v; want %+v", k.String(), got, err, k)
		}
	}
	if _, err := deadletter.ParseGroupKey("no-at"); err == nil {
		t.Error("ParseGroupKey accepted a key without @")
	}
}

func TestNewNeedsAStore(t *testing.T) {
	if _, err := deadletter.New(nil); err == nil {
		t.Fatal("New(nil) succeeded")
	}
}
