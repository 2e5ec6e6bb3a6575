package outbox

import (
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
)

// decodeMetadata decodes the text form of the metadata jsonb column, a flat
// object of strings, into Watermill metadata. Strings without escapes (the
// usual case) are decoded without encoding/json; anything else falls back
// to it.
func decodeMetadata(s string) message.Metadata {
	if md, ok := parseFlat(s); ok {
		return md
	}
	md := message.Metadata{}
	if err := json.Unmarshal([]byte(s), (*map[string]string)(&md)); err == nil {
		return md
	}
	return decodeLoose(s)
}

// decodeLoose keeps what it can of an object with non-string values (rows
// written by hand): other values are kept as their JSON text.
func decodeLoose(js string) message.Metadata {
	var raw map[string]any
	md := message.Metadata{}
	if json.Unmarshal([]byte(js), &raw) == nil {
		for k, v := range raw {
			if s, ok := v.(string); ok {
				md[k] = s
			} else {
				b, _ := json.Marshal(v)
				md[k] = string(b)
			}
		}
	}
	return md
}

// parseFlat parses {"k": "v", ...} whose strings hold no backslash and no
// control character, in valid UTF-8. ok is false for any other input.
func parseFlat(s string) (md message.Metadata, ok bool) {
	if !utf8.ValidString(s) {
		return nil, false
	}
	i := skipSpace(s, 0)
	if i >= len(s) || s[i] != '{' {
		return nil, false
	}
	md = make(message.Metadata, strings.Count(s, `":`))
	i = skipSpace(s, i+1)
	if i < len(s) && s[i] == '}' {
		return md, skipSpace(s, i+1) == len(s)
	}
	for {
		var k, v string
		if k, i, ok = plainString(s, i); !ok {
			return nil, false
		}
		i = skipSpace(s, i)
		if i >= len(s) || s[i] != ':' {
			return nil, false
		}
		if v, i, ok = plainString(s, skipSpace(s, i+1)); !ok {
			return nil, false
		}
		md[k] = v
		i = skipSpace(s, i)
		if i >= len(s) {
			return nil, false
		}
		switch s[i] {
		case ',':
			i = skipSpace(s, i+1)
		case '}':
			return md, skipSpace(s, i+1) == len(s)
		default:
			return nil, false
		}
	}
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r') {
		i++
	}
	return i
}

// plainString reads a JSON string at s[i] that needs no unescaping.
func plainString(s string, i int) (string, int, bool) {
	if i >= len(s) || s[i] != '"' {
		return "", i, false
	}
	for j := i + 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '"':
			return s[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return "", i, false
		}
	}
	return "", i, false
}
