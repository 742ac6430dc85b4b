// Package events is the contract for Strongroom's event log: the stable type
// names, the payload of every schema version, and the upcasters that turn an
// older payload into the current one.
//
// A type name never changes and never carries a version; the payload's
// version lives in the event's schema_version. Adding an optional field keeps
// the version; renaming, removing or re-typing a field bumps it and registers
// an upcaster from the previous version, so events written years ago still
// decode into today's struct. Events are never rewritten in the log: upcasting
// happens on every read.
package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
)

// ErrUnknownType is returned for an event type no schema is registered for.
var ErrUnknownType = errors.New("unknown event type")

// ErrUnknownVersion is returned for a schema version that is newer than the
// registered one or has no upcaster path to it.
var ErrUnknownVersion = errors.New("unknown schema version")

// ErrMalformed is returned when a payload does not decode into its schema.
var ErrMalformed = errors.New("malformed event payload")

// Upcaster rewrites the JSON payload of version N into version N+1.
type Upcaster func(json.RawMessage) (json.RawMessage, error)

// Schema describes one event type: its current version, the Go type of its
// current payload and the upcasters from every older version.
type Schema struct {
	Type    string
	Version int
	// Payload is a zero value of the current payload struct (not a pointer).
	Payload any
	// Upcasters[n] turns version n into n+1, for every n in [1, Version).
	Upcasters map[int]Upcaster
}

// Registry maps event types to their schemas. The zero value is not usable;
// build one with NewRegistry. A Registry is read-only after construction and
// safe for concurrent use.
type Registry struct {
	schemas map[string]Schema
}

// NewRegistry validates the schemas and returns a registry holding them.
func NewRegistry(schemas ...Schema) (*Registry, error) {
	r := &Registry{schemas: make(map[string]Schema, len(schemas))}
	for _, s := range schemas {
		if s.Type == "" || s.Version < 1 || s.Payload == nil {
			return nil, fmt.Errorf("register %q: type, version ≥ 1 and payload are required", s.Type)
		}
		if reflect.TypeOf(s.Payload).Kind() == reflect.Pointer {
			return nil, fmt.Errorf("register %q: payload must be a struct value, not a pointer", s.Type)
		}
		if _, dup := r.schemas[s.Type]; dup {
			return nil, fmt.Errorf("register %q: registered twice", s.Type)
		}
		for v := 1; v < s.Version; v++ {
			if s.Upcasters[v] == nil {
				return nil, fmt.Errorf("register %q: no upcaster from version %d to %d", s.Type, v, v+1)
			}
		}
		r.schemas[s.Type] = s
	}
	return r, nil
}

// MustRegistry is NewRegistry for package-level registries built from
// literals; it panics on a programming error in the schema list.
func MustRegistry(schemas ...Schema) *Registry {
	r, err := NewRegistry(schemas...)
	if err != nil {
		panic(err)
	}
	return r
}

// Types lists the registered event types in sorted order.
func (r *Registry) Types() []string {
	out := make([]string, 0, len(r.schemas))
	for t := range r.schemas {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Current returns the schema version new events of type t are written with.
func (r *Registry) Current(t string) (int, error) {
	s, ok := r.schemas[t]
	if !ok {
		return 0, fmt.Errorf("%w: %q", ErrUnknownType, t)
	}
	return s.Version, nil
}

// Encode checks that payload is the current payload type of t and returns its
// JSON and the schema version to store with it.
func (r *Registry) Encode(t string, payload any) (json.RawMessage, int, error) {
	s, ok := r.schemas[t]
	if !ok {
		return nil, 0, fmt.Errorf("%w: %q", ErrUnknownType, t)
	}
	pt := reflect.TypeOf(payload)
	if pt != nil && pt.Kind() == reflect.Pointer {
		pt = pt.Elem()
	}
	if pt != reflect.TypeOf(s.Payload) {
		return nil, 0, fmt.Errorf("encode %q: payload is %v, want %T", t, pt, s.Payload)
	}
	data, err := json.Marshal(payload)
	if err != nil {
		return nil, 0, fmt.Errorf("encode %q: %w", t, err)
	}
	return data, s.Version, nil
}

// Upcast brings a stored payload of the given version to the current
// version and returns it with that version.
func (r *Registry) Upcast(t string, version int, data json.RawMessage) (json.RawMessage, int, error) {
	s, ok := r.schemas[t]
	if !ok {
		return nil, 0, fmt.Errorf("%w: %q", ErrUnknownType, t)
	}
	if version < 1 || version > s.Version {
		return nil, 0, fmt.Errorf("%w: %q version %d (current %d)", ErrUnknownVersion, t, version, s.Version)
	}
	for v := version; v < s.Version; v++ {
		next, err := s.Upcasters[v](data)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: upcast %q from version %d: %v", ErrMalformed, t, v, err)
		}
		data = next
	}
	return data, s.Version, nil
}

// Decode upcasts a stored payload and unmarshals it into a new value of the
// current payload type, returned as a pointer (e.g. *DeviceEnrolled).
// Unknown fields are ignored, so a replica still running the previous release
// keeps reading events that a newer one wrote with an added optional field
// (the compatible change that keeps the version).
func (r *Registry) Decode(t string, version int, data json.RawMessage) (any, error) {
	data, _, err := r.Upcast(t, version, data)
	if err != nil {
		return nil, err
	}
	s := r.schemas[t]
	ptr := reflect.New(reflect.TypeOf(s.Payload))
	if err := unmarshalObject(data, ptr.Interface()); err != nil {
		return nil, fmt.Errorf("%w: %q version %d: %v", ErrMalformed, t, version, err)
	}
	return ptr.Interface(), nil
}

// DecodeAs is Decode with the payload type checked at compile time.
func DecodeAs[T any](r *Registry, t string, version int, data json.RawMessage) (*T, error) {
	v, err := r.Decode(t, version, data)
	if err != nil {
		return nil, err
	}
	p, ok := v.(*T)
	if !ok {
		var zero T
		return nil, fmt.Errorf("decode %q: payload is %T, want *%T", t, v, zero)
	}
	return p, nil
}

// unmarshalObject accepts exactly one JSON object: "null", arrays, scalars and
// trailing data are malformed payloads, not empty events.
func unmarshalObject(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("payload is not a JSON object")
	}
	if err := json.Unmarshal(data, v); err != nil {
		return err
	}
	return nil
}
