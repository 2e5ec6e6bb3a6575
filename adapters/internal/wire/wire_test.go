package wire

import (
	"errors"
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

func TestJSONObject(t *testing.T) {
	md, err := JSONObject([]byte(` {"s":"x","n":42,"f":1.50,"b":false,"z":null,"o":{"a":[1,"<"]}} `))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"s": "x", "n": "42", "f": "1.50", "b": "false", "z": "", "o": `{"a":[1,"<"]}`}
	for k, v := range want {
		if md[k] != v {
			t.Errorf("%s = %q, want %q", k, md[k], v)
		}
	}
	for _, in := range []string{"", "null"} {
		if md, err := JSONObject([]byte(in)); err != nil || len(md) != 0 {
			t.Errorf("JSONObject(%q) = %v, %v; want empty", in, md, err)
		}
	}
	for _, in := range []string{"42", `"s"`, "[1,2,3]", "{not json", `{"a":1} x`} {
		if _, err := JSONObject([]byte(in)); !errors.Is(err, ErrNotObject) {
			t.Errorf("JSONObject(%q) error = %v, want ErrNotObject", in, err)
		}
	}
}

// FuzzJSONObject: any input gives metadata or an error, never a panic, and
// a JSON object of strings comes back unchanged.
func FuzzJSONObject(f *testing.F) {
	for _, s := range []string{`{"a":"b"}`, `{"x":{"nested":[true]}}`, `42`, `"s"`, `[1,2,3]`, `null`, `{`, `{"a":1e400}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		md, err := JSONObject(raw)
		if err != nil {
			if !errors.Is(err, ErrNotObject) {
				t.Fatalf("error %v does not wrap ErrNotObject", err)
			}
			return
		}
		if md == nil {
			t.Fatal("nil metadata without an error")
		}
	})
}
