// Package projection defines read models as pure folds of events into
// documents. The same definition runs on every adapter (PostgreSQL, memory),
// incrementally as events are delivered, inline in an append transaction, or
// from the start of the log when a read model is rebuilt — so a rebuilt read
// model equals the incrementally built one by construction.
package projection

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"strongroom.dev/services/authd/internal/eventstore"
)

// Doc is one read-model row: a JSON document under a key, optionally owned
// by a user (so "all of this user's X" is an indexed lookup).
type Doc struct {
	Key   string          `json:"key"`
	Owner string          `json:"owner,omitempty"`
	Data  json.RawMessage `json:"data"`
	// Due, if not zero, is when the document next needs attention (a
	// session's expiry): Reader.Due finds such documents without a scan.
	Due time.Time `json:"due,omitzero"`

	// decoded is Data as a Typed projection's DocVersion decoded it, kept
	// for the Apply that follows on the same document (an append checks a
	// document's version, then folds into it), so it is decoded once.
	// decodedFrom is the Data it came from: a Doc whose Data was replaced
	// since is decoded again. Apply takes it (a fold may change it).
	decoded     any
	decodedFrom []byte
}

// takeDecoded returns the cached decoding of d.Data, if d has one that
// is still d's, and drops it.
func (d *Doc) takeDecoded() any {
	v, from := d.decoded, d.decodedFrom
	d.decoded, d.decodedFrom = nil, nil
	if v == nil || len(from) != len(d.Data) || len(from) == 0 || &from[0] != &d.Data[0] {
		return nil
	}
	return v
}

// Projection folds events into documents.
type Projection interface {
	// Name identifies the read model (lowercase letters, digits and '_').
	Name() string
	// Key returns the key of the document ev changes; ok is false for
	// events this projection ignores.
	Key(ev eventstore.Event) (key string, ok bool)
	// Apply returns the document after ev, given the document before it
	// (nil if there is none). A nil result deletes the document.
	Apply(cur *Doc, ev eventstore.Event) (*Doc, error)
}

// PerStream is implemented by projections whose documents each belong to
// one stream: the key is the stream id, only that stream's events change
// the document, and the document records the stream version it reflects.
// Appends then need no lock for them (the stream's compare-and-set already
// orders its writers), and may fold into a document the appender read
// (eventstore.Append.Known) once its version proves it current.
type PerStream interface {
	Projection
	// PerStream reports whether the projection keeps that promise.
	PerStream() bool
	// DocVersion returns the stream version a document reflects. It may
	// keep its decoding of d for an Apply to d that follows.
	DocVersion(d *Doc) (int64, error)
}

// StreamScoped is implemented by projections that read only the events of
// some stream types: the projector need not wake them for other events,
// and counts only their events as lag.
type StreamScoped interface {
	Projection
	// StreamTypes lists the stream types whose events the projection
	// reads; nil means all.
	StreamTypes() []string
}

// Scope returns the stream types p reads, nil for all.
func Scope(p Projection) []string {
	if s, ok := p.(StreamScoped); ok {
		return s.StreamTypes()
	}
	return nil
}

// InScope reports whether p reads events of streamType.
func InScope(p Projection, streamType string) bool {
	scope := Scope(p)
	return scope == nil || slices.Contains(scope, streamType)
}

var validName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,40}$`)

// CheckName refuses names that could not be used as part of a table name.
func CheckName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("projection name %q: want [a-z][a-z0-9_]{0,40}", name)
	}
	return nil
}

// ErrUnknown is returned for a projection name that is not registered.
var ErrUnknown = errors.New("unknown projection")

// Status is how far a projection has got.
type Status struct {
	Name       string              `json:"name"`
	Inline     bool                `json:"inline"`
	Generation int                 `json:"generation"`
	Position   eventstore.Position `json:"position"`
	Head       eventstore.Position `json:"head"`
	// LagEvents counts the events the read model has not applied yet.
	LagEvents int64 `json:"lag_events"`
	// LagSeconds is the age of the oldest event not applied yet (0 when
	// caught up).
	LagSeconds float64 `json:"lag_seconds"`
}

// LagAt computes LagSeconds from the oldest pending event's time.
func LagAt(now, oldestPending time.Time) float64 {
	if oldestPending.IsZero() || now.Before(oldestPending) {
		return 0
	}
	return now.Sub(oldestPending).Seconds()
}

// Typed is a Projection over documents of type T.
type Typed[T any] struct {
	ProjectionName string
	// KeyOf picks the document an event changes, or false to ignore it.
	KeyOf func(ev eventstore.Event) (string, bool)
	// Fold returns the next state (nil to delete) and its owner.
	Fold func(cur *T, ev eventstore.Event) (next *T, owner string, err error)
	// VersionOf, for a projection that is PerStream (KeyOf gives the
	// stream id, Fold records the event's version), returns the stream
	// version a document reflects; nil otherwise.
	VersionOf func(*T) int64
	// DueOf, if set, gives a document's Due time (zero for none).
	DueOf func(*T) time.Time
	// Streams, if set, are the only stream types whose events KeyOf may
	// pick (StreamScoped).
	Streams []string
}

// StreamTypes implements StreamScoped (nil: every stream type).
func (p Typed[T]) StreamTypes() []string { return p.Streams }

// PerStream implements PerStream.
func (p Typed[T]) PerStream() bool { return p.VersionOf != nil }

// DocVersion implements PerStream.
func (p Typed[T]) DocVersion(d *Doc) (int64, error) {
	if p.VersionOf == nil {
		return 0, fmt.Errorf("projection %s is not per stream", p.ProjectionName)
	}
	v, err := Decode[T](*d)
	if err != nil {
		return 0, err
	}
	d.decoded, d.decodedFrom = v, d.Data
	return p.VersionOf(v), nil
}

// Name implements Projection.
func (p Typed[T]) Name() string { return p.ProjectionName }

// Key implements Projection.
func (p Typed[T]) Key(ev eventstore.Event) (string, bool) { return p.KeyOf(ev) }

// Apply implements Projection.
func (p Typed[T]) Apply(cur *Doc, ev eventstore.Event) (*Doc, error) {
	key, ok := p.KeyOf(ev)
	if !ok {
		return cur, nil
	}
	var state *T
	if cur != nil {
		if v, ok := cur.takeDecoded().(*T); ok {
			state = v
		} else {
			state = new(T)
			if err := json.Unmarshal(cur.Data, state); err != nil {
				return nil, fmt.Errorf("projection %s: decode document %q: %w", p.ProjectionName, key, err)
			}
		}
	}
	next, owner, err := p.Fold(state, ev)
	if err != nil {
		return nil, fmt.Errorf("projection %s: apply %s at %s: %w", p.ProjectionName, ev.Type, ev.Position, err)
	}
	if next == nil {
		return nil, nil
	}
	data, err := json.Marshal(next)
	if err != nil {
		return nil, fmt.Errorf("projection %s: encode document %q: %w", p.ProjectionName, key, err)
	}
	d := &Doc{Key: key, Owner: owner, Data: data}
	if p.DueOf != nil {
		d.Due = p.DueOf(next).UTC().Truncate(time.Microsecond) // PostgreSQL's precision
	}
	return d, nil
}

// Decode decodes a document's data into T.
func Decode[T any](d Doc) (*T, error) {
	v := new(T)
	if err := json.Unmarshal(d.Data, v); err != nil {
		return nil, fmt.Errorf("decode document %q: %w", d.Key, err)
	}
	return v, nil
}
