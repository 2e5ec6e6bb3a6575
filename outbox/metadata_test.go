package outbox

import (
	"encoding/json"
	"maps"
	"testing"
)

func TestDecodeMetadata(t *testing.T) {
	cases := []string{
		`{}`, ` { } `, `{"a": "b"}`, `{"ce_id": "0193", "content-type": "application/json", "x": ""}`,
		`{"esc": "a\"b\\c\u00e9\n"}`, `{"num": 1, "s": "x", "o": {"k": [1]}}`, `{"a":"b","c":"d"}`,
		`{"ü": "ö"}`,
	}
	for _, c := range cases {
		got := decodeMetadata(c)
		var want map[string]any
		if err := json.Unmarshal([]byte(c), &want); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: got %v", c, got)
		}
		for k, v := range want {
			if s, ok := v.(string); ok && got[k] != s {
				t.Fatalf("%s: key %q = %q, want %q", c, k, got[k], s)
			}
			if _, ok := v.(string); !ok && got[k] == "" {
				t.Fatalf("%s: key %q lost", c, k)
			}
		}
	}
	for _, bad := range []string{``, `{`, `{"a"}`, `{"a": "b",}`, `[1]`, `{"a": "b"} x`} {
		if md, ok := parseFlat(bad); ok {
			t.Fatalf("parseFlat(%q) = %v, accepted", bad, md)
		}
		_ = decodeMetadata(bad) // must not panic
	}
}

func FuzzDecodeMetadata(f *testing.F) {
	f.Add(`{"a": "b"}`)
	f.Add(`{"a": "\u0041"}`)
	f.Fuzz(func(t *testing.T, s string) {
		md, ok := parseFlat(s)
		if !ok {
			return
		}
		var want map[string]string
		if err := json.Unmarshal([]byte(s), &want); err != nil {
			t.Fatalf("parseFlat accepted invalid JSON %q", s)
		}
		if !maps.Equal(map[string]string(md), want) {
			t.Fatalf("parseFlat(%q) = %v, encoding/json %v", s, md, want)
		}
	})
}
