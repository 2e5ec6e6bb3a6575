package router

import "encoding/json"

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

// JSON is the default [Codec]: encoding/json, content type
// "application/json". Unknown fields are ignored so producers can add fields
// without breaking consumers; a field of the wrong JSON type is an error.
type JSON struct{}

// Marshal encodes v as JSON.
func (JSON) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes JSON data into v.
func (JSON) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// ContentType returns "application/json".
func (JSON) ContentType() string { return "application/json" }
