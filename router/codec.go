package router

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
)

// Codec encodes message structs to payload bytes and back. JSON is the
// default; other encodings (protobuf, for example) plug in behind this
// interface. A Codec must be safe for concurrent use.
type Codec interface {
	// Marshal encodes v.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into the value v points to.
	Unmarshal(data []byte, v any) error
	// ContentType is the media type written to the content-type metadata key,
	// for example "application/json".
	ContentType() string
}

// StrictCodec is implemented by codecs that have a strict form: one that
// refuses payloads the codec itself would accept while dropping data
// (unknown fields, for example). [NewHandlerFunc] uses it for message types
// that ask for strict decoding ([StrictDecoder]). [JSON] and [StrictJSON]
// implement it.
type StrictCodec interface {
	Codec
	// Strict returns the strict form of the codec.
	Strict() Codec
}

// StrictDecoder is implemented by message types that choose how their
// payload is decoded, whatever the App's codec: StrictDecoding returning
// true asks for the codec's strict form ([StrictCodec]; for JSON,
// [StrictJSON]); returning false keeps the codec as it is. It is called
// once, on the zero value, when the handler is registered.
type StrictDecoder interface {
	StrictDecoding() bool
}

// codecFor returns the codec that decodes T: the strict form of codec when
// T asks for it.
func codecFor[T Message](codec Codec) (Codec, error) {
	var zero T
	sd, ok := any(zero).(StrictDecoder)
	if !ok || !sd.StrictDecoding() {
		return codec, nil
	}
	sc, ok := codec.(StrictCodec)
	if !ok {
		return nil, fmt.Errorf("hexeract: %s asks for strict decoding (StrictDecoding returns true) but the codec %T has no strict form; give the codec a Strict() Codec method or remove StrictDecoding", goTypeName[T](), codec)
	}
	return sc.Strict(), nil
}

// JSON is the default [Codec]: encoding/json, content type
// "application/json". Unknown fields are ignored so producers can add fields
// without breaking consumers; a field of the wrong JSON type is an error.
// Its strict form is [StrictJSON].
type JSON struct{}

// Marshal encodes v as JSON.
func (JSON) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes JSON data into v.
func (JSON) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// ContentType returns "application/json".
func (JSON) ContentType() string { return "application/json" }

// Strict returns [StrictJSON].
func (JSON) Strict() Codec { return StrictJSON{} }

// StrictJSON is a JSON [Codec] that refuses what [JSON] would silently
// drop: a field the target struct does not have (`json: unknown field
// "foo"`), an object that shares no field with a struct that has fields
// (`{}`, for example the body of another message type, or a structured
// CloudEvent read as data), null instead of an object, and data after the
// JSON value. Use it where a wrong producer must be caught (the error
// becomes a permanent [*DecodeError], so the message is dead-lettered with
// the field named) rather than where older consumers must read messages
// newer producers extended. It encodes like JSON.
type StrictJSON struct{}

// Marshal encodes v as JSON.
func (StrictJSON) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// ContentType returns "application/json".
func (StrictJSON) ContentType() string { return "application/json" }

// Strict returns StrictJSON itself.
func (StrictJSON) Strict() Codec { return StrictJSON{} }

// Unmarshal decodes JSON data into v, refusing unknown fields, an empty
// object for a struct with fields, null, and trailing data.
func (StrictJSON) Unmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	trimmed := bytes.TrimSpace(data)
	if bytes.Equal(trimmed, []byte("null")) {
		return errors.New("json: null where a value was expected")
	}
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("json: empty payload")
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("json: data after the top-level value (at byte %d)", dec.InputOffset())
	}
	// An object whose every member the struct knows shares a field with it,
	// unless it has no member at all: only {} remains to refuse, and only
	// then is the target type looked at.
	if len(trimmed) > 0 && trimmed[0] == '{' && isEmptyObject(trimmed) && hasJSONFields(v) {
		return fmt.Errorf("json: object with no field of %T", v)
	}
	return nil
}

// isEmptyObject reports whether b (trimmed JSON) is {} with optional
// whitespace inside.
func isEmptyObject(b []byte) bool {
	return len(b) >= 2 && b[len(b)-1] == '}' && len(bytes.TrimSpace(b[1:len(b)-1])) == 0
}

// hasJSONFields reports whether v points to a struct with at least one
// field encoding/json reads.
func hasJSONFields(v any) bool {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return false
	}
	for f := range t.Fields() {
		if f.Tag.Get("json") == "-" {
			continue
		}
		if f.IsExported() || f.Anonymous {
			return true
		}
	}
	return false
}
