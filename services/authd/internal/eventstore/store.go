package eventstore

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"strongroom.dev/api/events"
)

// Store is the event log.
type Store interface {
	// Append writes the events of every Append atomically: all of them or,
	// on any conflict or error, none. It returns the stored events in order.
	// Metadata and personal data are taken from ctx (WithMetadata,
	// WithPersonal, and the OpenTelemetry span for trace context).
	Append(ctx context.Context, appends ...Append) ([]Event, error)
	// ReadStream returns the events of one stream with a version greater
	// than after, in version order; an unknown stream has none.
	ReadStream(ctx context.Context, streamID string, after int64) ([]Event, error)
	// ReadAll returns up to limit events after pos in log order, holding
	// back events of transactions that may still commit before older ones.
	ReadAll(ctx context.Context, after Position, limit int) ([]Event, error)
	// ReadUser is ReadAll restricted to the events of one data subject.
	ReadUser(ctx context.Context, userID string, after Position, limit int) ([]Event, error)
	// Head returns the position of the last event a reader can see.
	Head(ctx context.Context) (Position, error)
}

// Limits on what a command may append, so that one request cannot write an
// unbounded batch or an oversized id.
const (
	MaxIDLength       = 200
	MaxEventsPerBatch = 1000
)

// Prepare validates an append batch and builds its events: ids, versions,
// payloads encoded with the registry, metadata and personal data from ctx,
// occurred_at from now. Adapters call it before touching storage, so
// invalid input writes nothing and both adapters refuse the same things.
// Positions are the adapter's to assign, as is UserID for streams that
// already exist (the owner they were created with).
func Prepare(ctx context.Context, reg *events.Registry, now time.Time, appends []Append) ([]Event, error) {
	if len(appends) == 0 {
		return nil, fmt.Errorf("%w: nothing to append", ErrInvalidAppend)
	}
	meta := MetadataFrom(ctx)
	personal := PersonalFrom(ctx)
	now = now.UTC().Truncate(time.Microsecond) // PostgreSQL's precision
	seen := make(map[string]bool, len(appends))
	var out []Event
	for _, a := range appends {
		if err := validID("stream id", a.StreamID); err != nil {
			return nil, err
		}
		if err := validID("stream type", a.StreamType); err != nil {
			return nil, err
		}
		if a.UserID != "" {
			if err := validID("user id", a.UserID); err != nil {
				return nil, err
			}
		}
		if seen[a.StreamID] {
			return nil, fmt.Errorf("%w: stream %q appears twice in one batch", ErrInvalidAppend, a.StreamID)
		}
		seen[a.StreamID] = true
		if a.ExpectedVersion < 0 {
			return nil, fmt.Errorf("%w: negative expected version", ErrInvalidAppend)
		}
		if len(a.Events) == 0 {
			return nil, fmt.Errorf("%w: stream %q: no events", ErrInvalidAppend, a.StreamID)
		}
		if len(out)+len(a.Events) > MaxEventsPerBatch {
			return nil, fmt.Errorf("%w: more than %d events", ErrInvalidAppend, MaxEventsPerBatch)
		}
		for j, p := range a.Events {
			data, v, err := reg.Encode(p.Type, p.Payload)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrInvalidAppend, err)
			}
			ev := Event{
				EventID:       uuid.Must(uuid.NewV7()),
				StreamID:      a.StreamID,
				StreamType:    a.StreamType,
				Version:       a.ExpectedVersion + int64(j) + 1,
				Type:          p.Type,
				SchemaVersion: v,
				OccurredAt:    now,
				UserID:        a.UserID,
				Data:          data,
				Metadata:      meta,
			}
			if personal != nil {
				cp := *personal
				ev.Personal = &cp
			}
			out = append(out, ev)
		}
	}
	return out, nil
}

func validID(what, s string) error {
	if s == "" || len(s) > MaxIDLength || !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s must be 1..%d bytes of UTF-8", ErrInvalidAppend, what, MaxIDLength)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %s has a control character", ErrInvalidAppend, what)
		}
	}
	return nil
}

// ClampLimit bounds a page size to [1, 1000], defaulting to 100.
func ClampLimit(limit int) int {
	switch {
	case limit <= 0:
		return 100
	case limit > 1000:
		return 1000
	}
	return limit
}
