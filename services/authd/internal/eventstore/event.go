// Package eventstore is the port of Strongroom's event log: what an event is,
// how commands append them with optimistic concurrency, and how readers page
// through the log in commit order. Adapters (PostgreSQL, memory) implement
// Store; one contract suite (storetest) holds them to the same behaviour.
package eventstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Event is one stored event, as read back from the log.
type Event struct {
	// Position orders the event in the whole log; see Position.
	Position      Position        `json:"position"`
	EventID       uuid.UUID       `json:"event_id"`
	StreamID      string          `json:"stream_id"`
	StreamType    string          `json:"stream_type"`
	Version       int64           `json:"version"`
	Type          string          `json:"type"`
	SchemaVersion int             `json:"schema_version"`
	OccurredAt    time.Time       `json:"occurred_at"`
	UserID        string          `json:"user_id,omitempty"`
	Data          json.RawMessage `json:"data"`
	Metadata      Metadata        `json:"metadata"`
	// Personal is the erasable part (IP, user agent). It is never carried in
	// outbox messages, only read from the log by those allowed to see it.
	Personal *Personal `json:"personal,omitempty"`
}

// Actor names who caused an event.
type Actor struct {
	// Kind is one of "user", "device", "client", "operator" or "system".
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

// Metadata is the non-personal context of an event.
type Metadata struct {
	Actor         Actor  `json:"actor"`
	CausationID   string `json:"causation_id,omitempty"`
	CorrelationID string `json:"correlation_id,omitempty"`
	// TraceParent and TraceState are the W3C trace context of the request
	// that appended the event, so the audit trail can name that request.
	TraceParent string `json:"traceparent,omitempty"`
	TraceState  string `json:"tracestate,omitempty"`
}

// TraceID returns the trace id part of TraceParent, or "".
func (m Metadata) TraceID() string {
	// version "-" trace-id(32) "-" parent-id(16) "-" flags
	if len(m.TraceParent) == 55 && m.TraceParent[2] == '-' && m.TraceParent[35] == '-' {
		return m.TraceParent[3:35]
	}
	return ""
}

// Personal is data about a person that a per-user key can later make
// erasable (crypto-shredding); it is stored apart from the payload.
type Personal struct {
	IP        string `json:"ip,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
}

// NoStream is the expected version of a stream that must not exist yet.
const NoStream int64 = 0

// Append is what a command writes to one stream.
type Append struct {
	StreamID   string
	StreamType string
	// ExpectedVersion is the version of the last event the command saw
	// (NoStream for a new stream). Any other current version fails the whole
	// append with a *ConflictError.
	ExpectedVersion int64
	// UserID is the data subject the stream belongs to, if any. It indexes
	// the audit trail and will select the key that makes Personal erasable.
	UserID string
	Events []Pending
	// Known optionally hands over read-model documents of this stream the
	// command read (by projection name, the document's JSON), so the store
	// need not read them again. A store uses one only for a per-stream
	// projection (projection.PerStream) and only if the document's own
	// version is ExpectedVersion; otherwise it reads the document itself.
	Known map[string]json.RawMessage
}

// Pending is an event a command wants appended.
type Pending struct {
	Type string
	// Payload is a value (or pointer) of the current payload type of Type
	// in the api/events registry.
	Payload any
}

// ErrReplayed fails an append whose one-time value (WithOnce) was already
// recorded; nothing of the append was written.
var ErrReplayed = errors.New("one-time value already used")

// ErrConflict is matched (errors.Is) by every *ConflictError.
var ErrConflict = errors.New("stream version conflict")

// ConflictError reports an append whose expected version was not the
// stream's current version. Nothing of that append was written.
type ConflictError struct {
	StreamID string
	Expected int64
	// Actual is the version found, when known (-1 if not).
	Actual int64
}

func (e *ConflictError) Error() string {
	if e.Actual < 0 {
		return fmt.Sprintf("stream %q: expected version %d: %v", e.StreamID, e.Expected, ErrConflict)
	}
	return fmt.Sprintf("stream %q: expected version %d, found %d: %v", e.StreamID, e.Expected, e.Actual, ErrConflict)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// ErrInvalidAppend is matched by appends that are malformed (empty stream
// id, unknown event type, a payload of the wrong type, a stream whose type
// differs from the one it was created with...). Nothing is written.
var ErrInvalidAppend = errors.New("invalid append")
