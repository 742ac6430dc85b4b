// Package memstore is the in-memory adapter of the event store, used by
// dev mode. It keeps the same promises as the PostgreSQL adapter (the
// storetest contract suite runs against both) and publishes every append
// through a watermill GoChannel, as PostgreSQL does through its outbox.
package memstore

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/projection"
)

// Topic is the GoChannel topic appended events are published to.
const Topic = "events"

type stream struct {
	streamType string
	userID     string
	events     []int // indexes into Store.log
}

// Store is the in-memory event store. It is safe for concurrent use.
type Store struct {
	registry *events.Registry
	now      func() time.Time
	pubsub   *gochannel.GoChannel

	mu      sync.RWMutex
	log     []eventstore.Event
	streams map[string]*stream
	commits uint64
	models  *models

	// secretMu serializes AppendWithSecret with secret reads; it is taken
	// before mu, never while holding it.
	secretMu sync.Mutex
	secrets  map[string][]byte

	onetime *OneTime
}

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock that stamps occurred_at.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithRegistry replaces the api/events default registry.
func WithRegistry(r *events.Registry) Option { return func(s *Store) { s.registry = r } }

// WithInline registers projections applied under the append's lock.
func WithInline(ps ...projection.Projection) Option {
	return func(s *Store) {
		for _, p := range ps {
			s.models.add(p, true)
		}
	}
}

// WithOneTime shares the one-time value store that appends record a
// request's value in (eventstore.WithOnce) with its other users.
func WithOneTime(o *OneTime) Option { return func(s *Store) { s.onetime = o } }

// New returns an empty store.
func New(opts ...Option) *Store {
	s := &Store{
		registry: events.Default,
		now:      time.Now,
		pubsub:   gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 256}, watermill.NopLogger{}),
		streams:  map[string]*stream{},
		models:   newModels(),
	}
	for _, o := range opts {
		o(s)
	}
	if s.onetime == nil {
		s.onetime = NewOneTime(s.now)
	}
	return s
}

// PubSub returns the GoChannel the store publishes appended events to.
func (s *Store) PubSub() message.Subscriber { return s.pubsub }

// Close stops publishing.
func (s *Store) Close() error { return s.pubsub.Close() }

// Append implements eventstore.Store.
func (s *Store) Append(ctx context.Context, appends ...eventstore.Append) ([]eventstore.Event, error) {
	out, err := eventstore.Prepare(ctx, s.registry, s.now(), appends)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	owners := make(map[string]string, len(appends))
	for _, a := range appends {
		st, ok := s.streams[a.StreamID]
		actual := int64(0)
		if ok {
			actual = int64(len(st.events))
		}
		if actual != a.ExpectedVersion {
			return nil, &eventstore.ConflictError{StreamID: a.StreamID, Expected: a.ExpectedVersion, Actual: actual}
		}
		owners[a.StreamID] = a.UserID
		if ok {
			if st.streamType != a.StreamType {
				return nil, fmt.Errorf("%w: stream %q is a %q stream, not %q", eventstore.ErrInvalidAppend, a.StreamID, st.streamType, a.StreamType)
			}
			if a.UserID != "" && a.UserID != st.userID {
				return nil, fmt.Errorf("%w: stream %q belongs to another user", eventstore.ErrInvalidAppend, a.StreamID)
			}
			owners[a.StreamID] = st.userID
		}
	}
	// Build everything before changing anything, so a failing inline
	// projection leaves the store as it was.
	seq := int64(len(s.log))
	for i := range out {
		seq++
		out[i].Position = eventstore.Position{Tx: s.commits + 1, Seq: seq}
		out[i].UserID = owners[out[i].StreamID]
	}
	once := eventstore.PendingOnce(ctx)
	if once != nil {
		if fresh, _ := s.onetime.Remember(ctx, once.Scope, once.Value, once.Until); !fresh {
			return nil, eventstore.ErrReplayed
		}
	}
	if err := s.models.applyInline(out); err != nil {
		if once != nil {
			s.onetime.forget(once.Scope, once.Value)
		}
		return nil, err
	}
	if once != nil {
		once.MarkRecorded()
	}
	s.commits++
	for _, ev := range out {
		st, ok := s.streams[ev.StreamID]
		if !ok {
			st = &stream{streamType: ev.StreamType, userID: ev.UserID}
			s.streams[ev.StreamID] = st
		}
		st.events = append(st.events, len(s.log))
		s.log = append(s.log, ev)
	}
	// The message is only a wake-up: subscribers read the log itself, so
	// GoChannel's unordered, unpersisted delivery loses nothing.
	msg := message.NewMessage(watermill.NewUUID(), nil)
	msg.Metadata.Set("position", out[len(out)-1].Position.String())
	if err := s.pubsub.Publish(Topic, msg); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	return cloneEvents(out), nil
}

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(_ context.Context, streamID string, after int64) ([]eventstore.Event, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.streams[streamID]
	if !ok || after < 0 {
		return nil, nil
	}
	var out []eventstore.Event
	for _, idx := range st.events {
		if s.log[idx].Version > after {
			out = append(out, s.log[idx])
		}
	}
	return cloneEvents(out), nil
}

// ReadAll implements eventstore.Store.
func (s *Store) ReadAll(_ context.Context, after eventstore.Position, limit int) ([]eventstore.Event, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return cloneEvents(s.readAfter(after, eventstore.ClampLimit(limit), "")), nil
}

// ReadUser implements eventstore.Store.
func (s *Store) ReadUser(_ context.Context, userID string, after eventstore.Position, limit int) ([]eventstore.Event, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return cloneEvents(s.readAfter(after, eventstore.ClampLimit(limit), userID)), nil
}

// readAfter pages the log; the caller holds s.mu.
func (s *Store) readAfter(after eventstore.Position, limit int, userID string) []eventstore.Event {
	// The log is in position order, so a page starts without a scan.
	start := sort.Search(len(s.log), func(i int) bool { return after.Less(s.log[i].Position) })
	var out []eventstore.Event
	for _, ev := range s.log[start:] {
		if len(out) == limit {
			break
		}
		if userID != "" && ev.UserID != userID {
			continue
		}
		out = append(out, ev)
	}
	return out
}

// Head implements eventstore.Store.
func (s *Store) Head(context.Context) (eventstore.Position, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.log) == 0 {
		return eventstore.Start, nil
	}
	return s.log[len(s.log)-1].Position, nil
}

// cloneEvents copies the mutable parts so callers cannot change the log.
func cloneEvents(in []eventstore.Event) []eventstore.Event {
	out := make([]eventstore.Event, len(in))
	for i, ev := range in {
		ev.Data = append([]byte(nil), ev.Data...)
		if ev.Personal != nil {
			p := *ev.Personal
			ev.Personal = &p
		}
		out[i] = ev
	}
	return out
}

var _ eventstore.Store = (*Store)(nil)
