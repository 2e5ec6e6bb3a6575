package wire

import (
	"testing"
	"time"
)

func TestText(t *testing.T) {
	ts := time.Date(2026, 12, 3, 6, 30, 0, 5, time.FixedZone("x", 3600))
	type dec struct{ s string }
	leaf := func(v any) (any, bool) {
		if d, ok := v.(dec); ok {
			return d.s, true
		}
		return nil, false
	}
	for _, c := range []struct {
		in   any
		want string
	}{
		{"a<b", "a<b"},
		{nil, ""},
		{int16(-3), "-3"},
		{1.5, "1.5"},
		{true, "true"},
		{[]byte{0xff, 1, 2}, "/wEC"},
		{[]byte("conv-9"), "conv-9"},
		{map[string]any{"b": []byte{0xff}}, `{"b":"/w=="}`},
		{ts, "2026-12-03T05:30:00.000000005Z"},
		{dec{"12.34"}, "12.34"},
		{map[string]any{"n": map[string]any{"x": []any{true, int64(2)}}, "d": dec{"1.0"}}, `{"d":"1.0","n":{"x":[true,2]}}`},
		{[]any{map[string]any{"count": int64(1), "time": ts, "reason": "rejected"}}, `[{"count":1,"reason":"rejected","time":"2026-12-03T05:30:00.000000005Z"}]`},
		{map[any]any{1: "a<b"}, `{"1":"a<b"}`},
	} {
		if got := Text(c.in, leaf); got != c.want {
			t.Errorf("Text(%#v) = %s, want %s", c.in, got, c.want)
		}
	}
}
