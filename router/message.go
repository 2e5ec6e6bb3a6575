package router

import (
	"fmt"
	"reflect"
	"sync"
)

// Message is implemented by every Hexeract message type. MessageType returns
// the stable wire name of the type (for example "users.registered"). It must
// not depend on field values: Hexeract calls it on the zero value.
type Message interface {
	MessageType() string
}

// Keyed is implemented by messages that carry an ordering key (for example an
// aggregate id). Transports that partition (Kafka) use it as the partition
// key, and the outbox delivers messages with the same key in commit order.
type Keyed interface {
	OrderingKey() string
}

// TypeName returns the wire name of the message type T, calling MessageType
// on T's zero value. It returns an error when the name is empty or when
// MessageType panics on the zero value (for example a pointer receiver that
// reads fields).
func TypeName[T Message]() (name string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("hexeract: %s.MessageType panicked on the zero value (%v); declare it on the value receiver and return a constant", goTypeName[T](), r)
		}
	}()
	var zero T
	name = zero.MessageType()
	if name == "" {
		return "", fmt.Errorf("hexeract: %s.MessageType returned an empty wire name", goTypeName[T]())
	}
	return name, nil
}

func goTypeName[T any]() string {
	return reflect.TypeFor[T]().String()
}

// Registry maps wire names to Go types. It is safe for concurrent use. The
// zero value is not usable; create one with [NewRegistry].
type Registry struct {
	mu    sync.RWMutex
	types map[string]registration
}

type registration struct {
	goType reflect.Type
	decode func(codec Codec, data []byte) (Message, error)
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{types: make(map[string]registration)}
}

// Register records the wire name of T in the registry and returns it.
// Registering the same type again is a no-op; registering a different Go type
// under a name that is already taken is an error that names both types.
func Register[T Message](r *Registry) (string, error) {
	name, err := TypeName[T]()
	if err != nil {
		return "", err
	}
	goType := reflect.TypeFor[T]()
	r.mu.Lock()
	defer r.mu.Unlock()
	if existing, ok := r.types[name]; ok {
		if existing.goType == goType {
			return name, nil
		}
		return "", fmt.Errorf("hexeract: wire name %q is already registered for %s; %s must use another MessageType", name, existing.goType, goType)
	}
	r.types[name] = registration{
		goType: goType,
		decode: func(codec Codec, data []byte) (Message, error) {
			var v T
			if err := codec.Unmarshal(data, &v); err != nil {
				return nil, err
			}
			return v, nil
		},
	}
	return name, nil
}

// Lookup returns the Go type registered under a wire name.
func (r *Registry) Lookup(name string) (reflect.Type, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	reg, ok := r.types[name]
	return reg.goType, ok
}

// Names returns the registered wire names, in no particular order.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.types))
	for name := range r.types {
		names = append(names, name)
	}
	return names
}

// DecodeAny decodes data as the Go type registered under name. It is meant
// for tools and multi-type consumers (dead-letter inspection, replies that
// may be one of several types); typed handlers decode without it.
func (r *Registry) DecodeAny(codec Codec, name string, data []byte) (Message, error) {
	r.mu.RLock()
	reg, ok := r.types[name]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("hexeract: unknown message type %q", name)
	}
	return reg.decode(codec, data)
}
