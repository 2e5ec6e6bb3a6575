// Package wire holds the text forms Hexeract's adapters give to metadata
// values a transport allows but Hexeract does not use as text, so every
// adapter carries them the same way (docs/transports.md, "Text forms"):
//
//   - strings stay as they are;
//   - numbers and booleans: their Go text form (42, 1.5, true);
//   - timestamps: RFC 3339 with nanoseconds, in UTC;
//   - byte arrays: their text when they are valid UTF-8 (clients such as
//     RabbitMQ's .NET client send strings as byte arrays), standard base64
//     otherwise;
//   - tables (maps) and arrays: JSON, with the same rules inside (a
//     timestamp in a table is an RFC 3339 JSON string, bytes a base64 JSON
//     string);
//   - a missing value (nil): the empty string.
//
// Transport-specific leaf types (an AMQP decimal) are turned into a plain
// value by the adapter's Leaf function first.
package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"time"
	"unicode/utf8"
)

// Leaf turns a transport-specific value into a plain one (string, number,
// map, slice, ...), reporting false for values it does not know.
type Leaf func(v any) (any, bool)

// Text returns the text form of v (see the package doc). leaf may be nil.
func Text(v any, leaf Leaf) string {
	if leaf != nil {
		if p, ok := leaf(v); ok {
			v = p
		}
	}
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return bytesText(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case bool:
		return strconv.FormatBool(x)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return fmt.Sprint(x)
	}
	plain := normalize(v, leaf, 0)
	if s, ok := plain.(string); ok {
		return s
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(plain); err != nil {
		return fmt.Sprint(v)
	}
	return string(bytes.TrimRight(b.Bytes(), "\n"))
}

// bytesText is the text of a byte array: itself when it is valid UTF-8,
// standard base64 otherwise.
func bytesText(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// maxDepth bounds the nesting normalize follows (a hostile producer can nest
// tables deeply); deeper values become their fmt text.
const maxDepth = 64

// normalize returns v as JSON-ready plain values: maps with string keys,
// slices, strings, numbers, booleans, nil.
func normalize(v any, leaf Leaf, depth int) any {
	if leaf != nil {
		if p, ok := leaf(v); ok {
			v = p
		}
	}
	switch x := v.(type) {
	case nil, string, bool, float32, float64, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return x
	case []byte:
		return bytesText(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case json.Number:
		return x
	}
	if depth >= maxDepth {
		return fmt.Sprint(v)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Map:
		out := make(map[string]any, rv.Len())
		it := rv.MapRange()
		for it.Next() {
			out[fmt.Sprint(it.Key().Interface())] = normalize(it.Value().Interface(), leaf, depth+1)
		}
		return out
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = normalize(rv.Index(i).Interface(), leaf, depth+1)
		}
		return out
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil
		}
		return normalize(rv.Elem().Interface(), leaf, depth+1)
	case reflect.String:
		return rv.String()
	case reflect.Bool:
		return rv.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return rv.Uint()
	case reflect.Float32, reflect.Float64:
		return rv.Float()
	}
	return fmt.Sprint(v)
}

// ErrNotObject is the cause JSONObject reports for JSON that is valid but
// not an object (a number, a string, an array).
var ErrNotObject = errors.New("not a JSON object")

// JSONObject decodes raw, a JSON object, into metadata: string values as
// they are, the others in their text form (numbers as written, booleans,
// null as the empty string, objects and arrays as JSON). Empty input and
// null give empty metadata. Anything else that is not a JSON object is an
// error wrapping ErrNotObject (or the JSON syntax error).
func JSONObject(raw []byte) (map[string]string, error) {
	md := make(map[string]string)
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return md, nil
	}
	if raw[0] != '{' {
		return nil, fmt.Errorf("%w: %.64s", ErrNotObject, raw)
	}
	// The usual case, an object of strings, in one pass.
	if json.Unmarshal(raw, &md) == nil {
		return md, nil
	}
	clear(md) // a failed pass may have filled some keys
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotObject, err)
	}
	for k, v := range m {
		var s string
		if json.Unmarshal(v, &s) == nil {
			md[k] = s
			continue
		}
		var x any
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.UseNumber()
		if err := dec.Decode(&x); err != nil {
			return nil, fmt.Errorf("%w: value of %q: %w", ErrNotObject, k, err)
		}
		md[k] = Text(x, nil)
	}
	return md, nil
}
