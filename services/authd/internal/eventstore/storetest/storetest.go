// Package storetest is the one contract suite every event store adapter
// must pass. The PostgreSQL and the in-memory adapters both run it, which is
// what makes dev mode trustworthy: it behaves like production.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/projection"
	"strongroom.dev/services/authd/internal/readmodel"
)

// Harness is one fresh store with its projections.
type Harness struct {
	Store  eventstore.Store
	Runner projection.Runner
}

// Factory builds a fresh, empty harness whose store runs inline
// projections in its appends and whose runner runs async ones.
type Factory func(t *testing.T, inline, async []projection.Projection) Harness

// StreamHeadsName is the inline projection the suite registers.
const StreamHeadsName = "stream_heads"

// StreamHead is the document of the suite's inline projection.
type StreamHead struct {
	Version  int64  `json:"version"`
	LastType string `json:"last_type"`
	// Due is the document's Due: its event's time plus one hour per
	// version.
	Due time.Time `json:"due"`
}

// StreamHeads is a small inline projection: one document per stream
// (projection.PerStream).
func StreamHeads() projection.Projection {
	return projection.Typed[StreamHead]{
		ProjectionName: StreamHeadsName,
		KeyOf:          func(ev eventstore.Event) (string, bool) { return ev.StreamID, true },
		Fold: func(_ *StreamHead, ev eventstore.Event) (*StreamHead, string, error) {
			due := ev.OccurredAt.Add(time.Duration(ev.Version) * time.Hour)
			return &StreamHead{Version: ev.Version, LastType: ev.Type, Due: due}, ev.UserID, nil
		},
		VersionOf: func(h *StreamHead) int64 { return h.Version },
		DueOf:     func(h *StreamHead) time.Time { return h.Due },
	}
}

// UserEventsName is the suite's inline projection whose documents many
// streams change.
const UserEventsName = "user_events"

// UserEvents counts each user's events: one document per user, changed by
// every stream of that user, so appends must lock it.
type UserEvents struct {
	Count int `json:"count"`
}

// UserEventCounts is the inline projection of UserEvents.
func UserEventCounts() projection.Projection {
	return projection.Typed[UserEvents]{
		ProjectionName: UserEventsName,
		KeyOf:          func(ev eventstore.Event) (string, bool) { return ev.UserID, ev.UserID != "" },
		Fold: func(cur *UserEvents, ev eventstore.Event) (*UserEvents, string, error) {
			next := UserEvents{}
			if cur != nil {
				next = *cur
			}
			next.Count++
			return &next, ev.UserID, nil
		},
	}
}

// Run runs the whole suite against the adapter f builds.
func Run(t *testing.T, f Factory) {
	h := func(t *testing.T) Harness {
		h := f(t, []projection.Projection{StreamHeads(), UserEventCounts()}, []projection.Projection{readmodel.Devices(events.Default)})
		h.Store = &recorder{Store: h.Store}
		return h
	}
	t.Run("AppendAndReadStream", func(t *testing.T) { testAppendAndRead(t, h(t)) })
	t.Run("MetadataAndTraceContext", func(t *testing.T) { testMetadata(t, h(t)) })
	t.Run("ConflictWritesNothing", func(t *testing.T) { testConflict(t, h(t)) })
	t.Run("OneTimeValueWithAppend", func(t *testing.T) { testOnce(t, h(t)) })
	t.Run("MultiStreamAtomic", func(t *testing.T) { testMultiStream(t, h(t)) })
	t.Run("InvalidAppends", func(t *testing.T) { testInvalid(t, h(t)) })
	t.Run("SameStreamRace", func(t *testing.T) { testSameStreamRace(t, h(t)) })
	t.Run("SameStreamRetryRace", func(t *testing.T) { testSameStreamRetry(t, h(t)) })
	t.Run("PagingWhileWriting", func(t *testing.T) { testPaging(t, h(t)) })
	t.Run("ReadUser", func(t *testing.T) { testReadUser(t, h(t)) })
	t.Run("HostilePositions", func(t *testing.T) { testHostilePositions(t, h(t)) })
	t.Run("InlineProjectionReadsOwnWrite", func(t *testing.T) { testInline(t, h(t)) })
	t.Run("KnownDocuments", func(t *testing.T) { testKnown(t, h(t)) })
	t.Run("DueDocuments", func(t *testing.T) { testDue(t, h(t)) })
	t.Run("SharedInlineDocumentRace", func(t *testing.T) { testSharedDocRace(t, h(t)) })
	t.Run("ProjectionAndRebuild", func(t *testing.T) { testProjection(t, h(t)) })
}

// Enroll returns the append that enrolls a device for a user.
func Enroll(deviceID, userID string) eventstore.Append {
	return eventstore.Append{
		StreamID: deviceID, StreamType: events.StreamDevice, UserID: userID,
		Events: []eventstore.Pending{{Type: events.DeviceEnrolled, Payload: events.DeviceEnrolledV1{
			UserID: userID, ActivationID: "act-" + deviceID, Name: "Phone of " + userID, Platform: "android",
			KeyThumbprint: "jkt-" + deviceID,
		}}},
	}
}

// Then returns an append of more device events after version v.
func Then(deviceID string, v int64, pending ...eventstore.Pending) eventstore.Append {
	return eventstore.Append{StreamID: deviceID, StreamType: events.StreamDevice, ExpectedVersion: v, Events: pending}
}

// Lock is a device.locked pending event.
func Lock(reason string) eventstore.Pending {
	return eventstore.Pending{Type: events.DeviceLocked, Payload: events.DeviceLockedV1{Reason: reason}}
}

// PasscodeSet is a device.passcode_set pending event.
func PasscodeSet() eventstore.Pending {
	return eventstore.Pending{Type: events.DevicePasscodeSet, Payload: events.DevicePasscodeSetV1{PepperID: "p1"}}
}

func mustAppend(t *testing.T, s eventstore.Store, a ...eventstore.Append) []eventstore.Event {
	t.Helper()
	evs, err := s.Append(context.Background(), a...)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return evs
}

// recorder remembers the last position its appends returned.
type recorder struct {
	eventstore.Store
	mu   sync.Mutex
	last eventstore.Position
}

func (r *recorder) Append(ctx context.Context, a ...eventstore.Append) ([]eventstore.Event, error) {
	evs, err := r.Store.Append(ctx, a...)
	if err == nil {
		r.mu.Lock()
		if r.last.Less(Last(evs)) {
			r.last = Last(evs)
		}
		r.mu.Unlock()
	}
	return evs, err
}

// settle waits until every event appended so far is visible to ReadAll. A
// committed event becomes visible once every transaction older than it has
// ended (anywhere on the server): that is what lets readers page by
// position without skipping late commits.
func settle(t *testing.T, s eventstore.Store) {
	t.Helper()
	r, ok := s.(*recorder)
	if !ok {
		return
	}
	r.mu.Lock()
	last := r.last
	r.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		head, err := s.Head(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !head.Less(last) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("appended events never became visible: head %s, last append %s", head, last)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func allEvents(t *testing.T, s eventstore.Store) []eventstore.Event {
	t.Helper()
	settle(t, s)
	var out []eventstore.Event
	pos := eventstore.Start
	for {
		page, err := s.ReadAll(context.Background(), pos, 1000)
		if err != nil {
			t.Fatalf("read all: %v", err)
		}
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		pos = page[len(page)-1].Position
	}
}

func testAppendAndRead(t *testing.T, h Harness) {
	ctx := context.Background()
	got := mustAppend(t, h.Store, Enroll("dev-1", "user-1"))
	if len(got) != 1 || got[0].Version != 1 || got[0].SchemaVersion != 1 || got[0].UserID != "user-1" {
		t.Fatalf("append returned %+v", got)
	}
	mustAppend(t, h.Store, Then("dev-1", 1, PasscodeSet(), Lock("back_office")))
	evs, err := h.Store.ReadStream(ctx, "dev-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	wantTypes := []string{events.DeviceEnrolled, events.DevicePasscodeSet, events.DeviceLocked}
	if len(evs) != len(wantTypes) {
		t.Fatalf("read %d events, want %d", len(evs), len(wantTypes))
	}
	for i, ev := range evs {
		if ev.Type != wantTypes[i] || ev.Version != int64(i+1) || ev.StreamType != events.StreamDevice || ev.UserID != "user-1" {
			t.Errorf("event %d = %s v%d %s owner %q", i, ev.Type, ev.Version, ev.StreamType, ev.UserID)
		}
		if i > 0 && !evs[i-1].Position.Less(ev.Position) {
			t.Errorf("positions not increasing: %s then %s", evs[i-1].Position, ev.Position)
		}
	}
	p, err := events.DecodeAs[events.DeviceLockedV1](events.Default, evs[2].Type, evs[2].SchemaVersion, evs[2].Data)
	if err != nil || p.Reason != "back_office" {
		t.Fatalf("decode lock: %+v, %v", p, err)
	}
	after, err := h.Store.ReadStream(ctx, "dev-1", 2)
	if err != nil || len(after) != 1 || after[0].Version != 3 {
		t.Fatalf("read after version 2: %d events, %v", len(after), err)
	}
	none, err := h.Store.ReadStream(ctx, "no-such-stream", 0)
	if err != nil || len(none) != 0 {
		t.Fatalf("unknown stream: %d events, %v", len(none), err)
	}
	settle(t, h.Store)
	head, err := h.Store.Head(ctx)
	if err != nil || head != evs[2].Position {
		t.Fatalf("head = %s, %v; want %s", head, err, evs[2].Position)
	}
	all := allEvents(t, h.Store)
	if len(all) != 3 || all[0].EventID != evs[0].EventID {
		t.Fatalf("read all: %d events", len(all))
	}
}

func testMetadata(t *testing.T, h Harness) {
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	ctx, span := tp.Tracer("test").Start(context.Background(), "request")
	ctx = eventstore.WithMetadata(ctx, eventstore.Metadata{CorrelationID: "corr-1", CausationID: "cmd-1"})
	ctx = eventstore.WithActor(ctx, eventstore.Actor{Kind: "operator", ID: "alice"})
	ctx = eventstore.WithPersonal(ctx, eventstore.Personal{IP: "203.0.113.9", UserAgent: "BankApp/1.0"})
	if _, err := h.Store.Append(ctx, Enroll("dev-m", "user-m")); err != nil {
		t.Fatal(err)
	}
	span.End()
	evs, err := h.Store.ReadStream(context.Background(), "dev-m", 0)
	if err != nil || len(evs) != 1 {
		t.Fatalf("read: %d, %v", len(evs), err)
	}
	ev := evs[0]
	if ev.Metadata.Actor != (eventstore.Actor{Kind: "operator", ID: "alice"}) || ev.Metadata.CorrelationID != "corr-1" || ev.Metadata.CausationID != "cmd-1" {
		t.Errorf("metadata = %+v", ev.Metadata)
	}
	if got, want := ev.Metadata.TraceID(), span.SpanContext().TraceID().String(); got != want {
		t.Errorf("trace id = %q, want %q (traceparent %q)", got, want, ev.Metadata.TraceParent)
	}
	if ev.Personal == nil || ev.Personal.IP != "203.0.113.9" || ev.Personal.UserAgent != "BankApp/1.0" {
		t.Errorf("personal = %+v", ev.Personal)
	}
	var data map[string]any
	if err := json.Unmarshal(ev.Data, &data); err != nil {
		t.Fatal(err)
	}
	for k := range data {
		if k == "ip" || k == "user_agent" {
			t.Errorf("personal field %q leaked into the payload", k)
		}
	}
	if ev.OccurredAt.IsZero() || ev.OccurredAt.Location() != time.UTC {
		t.Errorf("occurred_at = %v", ev.OccurredAt)
	}
	// Without metadata in the context the system is the actor.
	mustAppend(t, h.Store, Enroll("dev-sys", "user-m"))
	sys, _ := h.Store.ReadStream(context.Background(), "dev-sys", 0)
	if sys[0].Metadata.Actor.Kind != "system" || sys[0].Personal != nil {
		t.Errorf("default actor = %+v, personal %+v", sys[0].Metadata.Actor, sys[0].Personal)
	}
}

func testConflict(t *testing.T, h Harness) {
	mustAppend(t, h.Store, Enroll("dev-c", "user-c"))
	before := allEvents(t, h.Store)
	cases := []struct {
		name string
		a    eventstore.Append
		want int64
	}{
		{"stream exists", Enroll("dev-c", "user-c"), 1},
		{"behind", Then("dev-c", 0, Lock("x")), 1},
		{"ahead", Then("dev-c", 5, Lock("x")), 1},
		{"missing stream", Then("dev-none", 3, Lock("x")), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := h.Store.Append(context.Background(), c.a)
			var ce *eventstore.ConflictError
			if !errors.As(err, &ce) || !errors.Is(err, eventstore.ErrConflict) {
				t.Fatalf("err = %v, want a *ConflictError", err)
			}
			if ce.StreamID != c.a.StreamID || ce.Expected != c.a.ExpectedVersion || ce.Actual != c.want {
				t.Errorf("conflict = %+v, want actual %d", ce, c.want)
			}
		})
	}
	if after := allEvents(t, h.Store); len(after) != len(before) {
		t.Fatalf("conflicting appends wrote %d events", len(after)-len(before))
	}
}

// testOnce: a one-time value (a DPoP jti) recorded with an append makes
// every other append carrying it fail with ErrReplayed and write nothing,
// even 32 at once on different streams; an append that fails for another
// reason (a conflict) leaves the value unrecorded.
func testOnce(t *testing.T, h Harness) {
	until := time.Now().Add(time.Hour)
	once := func(v string) *eventstore.Once { return &eventstore.Once{Scope: "test", Value: v, Until: until} }
	ctx := func(o *eventstore.Once) context.Context { return eventstore.WithOnce(context.Background(), o) }

	mustAppend(t, h.Store, Enroll("dev-o", "user-o"))
	lost := once("jti-1")
	if _, err := h.Store.Append(ctx(lost), Then("dev-o", 7, Lock("conflict"))); !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("conflicting append: %v", err)
	}
	if lost.Recorded() {
		t.Fatal("a conflicting append recorded its one-time value")
	}
	first := once("jti-1")
	if _, err := h.Store.Append(ctx(first), Then("dev-o", 1, Lock("first"))); err != nil {
		t.Fatalf("first use after a conflict: %v", err)
	}
	if !first.Recorded() {
		t.Fatal("the committed append did not report its value recorded")
	}
	// A recorded Once is not recorded again by the request's later appends.
	if _, err := h.Store.Append(ctx(first), Then("dev-o", 2, Lock("same request"))); err != nil {
		t.Fatalf("a later append of the same request: %v", err)
	}
	before := allEvents(t, h.Store)
	if _, err := h.Store.Append(ctx(once("jti-1")), Then("dev-o", 3, Lock("replay"))); !errors.Is(err, eventstore.ErrReplayed) {
		t.Fatalf("replayed value: err = %v, want ErrReplayed", err)
	}
	if _, err := h.Store.Append(ctx(&eventstore.Once{Scope: "other", Value: "jti-1", Until: until}), Then("dev-o", 3, Lock("other scope"))); err != nil {
		t.Fatalf("the same value in another scope: %v", err)
	}

	const n = 32
	errs := atOnce(n, func(i int) (err error) {
		_, err = h.Store.Append(ctx(once("jti-race")), Enroll(fmt.Sprintf("dev-race-%d", i), "user-o"))
		return err
	})
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, eventstore.ErrReplayed):
			t.Errorf("loser got %v, want ErrReplayed", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d appends with one value won, want exactly 1", wins)
	}
	if after := allEvents(t, h.Store); len(after) != len(before)+2 {
		t.Fatalf("replayed appends wrote %d events, want 2 (other scope, race winner)", len(after)-len(before))
	}
}

func testMultiStream(t *testing.T, h Harness) {
	ctx := context.Background()
	mustAppend(t, h.Store, Enroll("dev-a", "user-x"), Enroll("dev-b", "user-x"))
	before := allEvents(t, h.Store)
	// Locking two devices where the second's expected version is stale.
	_, err := h.Store.Append(ctx, Then("dev-a", 1, Lock("x")), Then("dev-b", 0, Lock("x")))
	if !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("err = %v, want conflict", err)
	}
	// The same with the conflicting stream first.
	_, err = h.Store.Append(ctx, Then("dev-b", 7, Lock("x")), Then("dev-a", 1, Lock("x")))
	if !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("err = %v, want conflict", err)
	}
	// A new stream created together with a conflicting one is not created.
	_, err = h.Store.Append(ctx, Enroll("dev-new", "user-x"), Then("dev-a", 9, Lock("x")))
	if !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("err = %v, want conflict", err)
	}
	if after := allEvents(t, h.Store); len(after) != len(before) {
		t.Fatalf("failed multi-stream appends wrote %d events", len(after)-len(before))
	}
	for _, id := range []string{"dev-a", "dev-b", "dev-new"} {
		evs, _ := h.Store.ReadStream(ctx, id, 0)
		want := 1
		if id == "dev-new" {
			want = 0
		}
		if len(evs) != want {
			t.Errorf("%s has %d events, want %d", id, len(evs), want)
		}
	}
	// The stream can still be created and both move together when right.
	got := mustAppend(t, h.Store, Enroll("dev-new", "user-x"), Then("dev-a", 1, Lock("x")), Then("dev-b", 1, Lock("x")))
	if len(got) != 3 || got[0].Position.Tx != got[2].Position.Tx {
		t.Fatalf("atomic append: %d events, positions %s %s", len(got), got[0].Position, got[len(got)-1].Position)
	}
}

func testInvalid(t *testing.T, h Harness) {
	mustAppend(t, h.Store, Enroll("dev-i", "user-i"))
	before := allEvents(t, h.Store)
	long := make([]byte, eventstore.MaxIDLength+1)
	for i := range long {
		long[i] = 'a'
	}
	many := make([]eventstore.Pending, eventstore.MaxEventsPerBatch+1)
	for i := range many {
		many[i] = Lock("x")
	}
	cases := []struct {
		name string
		a    []eventstore.Append
	}{
		{"nothing", nil},
		{"empty stream id", []eventstore.Append{{StreamType: "device", Events: []eventstore.Pending{Lock("x")}}}},
		{"empty stream type", []eventstore.Append{{StreamID: "s", Events: []eventstore.Pending{Lock("x")}}}},
		{"too long id", []eventstore.Append{{StreamID: string(long), StreamType: "device", Events: []eventstore.Pending{Lock("x")}}}},
		{"control character", []eventstore.Append{{StreamID: "a\x00b", StreamType: "device", Events: []eventstore.Pending{Lock("x")}}}},
		{"invalid utf-8", []eventstore.Append{{StreamID: "a\xffb", StreamType: "device", Events: []eventstore.Pending{Lock("x")}}}},
		{"no events", []eventstore.Append{{StreamID: "s", StreamType: "device"}}},
		{"negative version", []eventstore.Append{{StreamID: "s", StreamType: "device", ExpectedVersion: -1, Events: []eventstore.Pending{Lock("x")}}}},
		{"unknown type", []eventstore.Append{{StreamID: "s", StreamType: "device", Events: []eventstore.Pending{{Type: "device.exploded", Payload: struct{}{}}}}}},
		{"wrong payload", []eventstore.Append{{StreamID: "s", StreamType: "device", Events: []eventstore.Pending{{Type: events.DeviceLocked, Payload: events.DeviceRevokedV1{}}}}}},
		{"nil payload", []eventstore.Append{{StreamID: "s", StreamType: "device", Events: []eventstore.Pending{{Type: events.DeviceLocked}}}}},
		{"same stream twice", []eventstore.Append{Enroll("s2", "u"), Enroll("s2", "u")}},
		{"too many events", []eventstore.Append{{StreamID: "s", StreamType: "device", Events: many}}},
		{"other stream type", []eventstore.Append{{StreamID: "dev-i", StreamType: "session", ExpectedVersion: 1, Events: []eventstore.Pending{Lock("x")}}}},
		{"other owner", []eventstore.Append{{StreamID: "dev-i", StreamType: "device", UserID: "mallory", ExpectedVersion: 1, Events: []eventstore.Pending{Lock("x")}}}},
		{"valid with invalid", []eventstore.Append{Then("dev-i", 1, Lock("x")), {StreamID: "", StreamType: "device", Events: []eventstore.Pending{Lock("x")}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := h.Store.Append(context.Background(), c.a...)
			if !errors.Is(err, eventstore.ErrInvalidAppend) {
				t.Fatalf("err = %v, want ErrInvalidAppend", err)
			}
		})
	}
	if after := allEvents(t, h.Store); len(after) != len(before) {
		t.Fatalf("invalid appends wrote %d events", len(after)-len(before))
	}
}

// testSameStreamRace: 64 goroutines append at the same expected version;
// exactly one wins and every loser gets the conflict error.
func testSameStreamRace(t *testing.T, h Harness) {
	mustAppend(t, h.Store, Enroll("dev-r", "user-r"))
	const n = 64
	errs := atOnce(n, func(i int) (err error) {
		_, err = h.Store.Append(context.Background(), Then("dev-r", 1, Lock(fmt.Sprint(i))))
		return err
	})
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, eventstore.ErrConflict):
		default:
			t.Errorf("loser got %v, want a conflict", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d appends won, want exactly 1", wins)
	}
	evs, _ := h.Store.ReadStream(context.Background(), "dev-r", 0)
	if len(evs) != 2 || evs[1].Version != 2 {
		t.Fatalf("stream has %d events", len(evs))
	}
	if all := allEvents(t, h.Store); len(all) != 2 {
		t.Fatalf("log has %d events, want 2", len(all))
	}
}

// testSameStreamRetry: 64 goroutines each keep retrying until their event
// is in; versions end gap-free and unique, one event per goroutine.
func testSameStreamRetry(t *testing.T, h Harness) {
	ctx := context.Background()
	mustAppend(t, h.Store, Enroll("dev-q", "user-q"))
	const n = 64
	var wg sync.WaitGroup
	var mu sync.Mutex
	conflicts := 0
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				evs, err := h.Store.ReadStream(ctx, "dev-q", 0)
				if err != nil {
					t.Error(err)
					return
				}
				_, err = h.Store.Append(ctx, Then("dev-q", evs[len(evs)-1].Version, Lock(fmt.Sprint(i))))
				if err == nil {
					return
				}
				if !errors.Is(err, eventstore.ErrConflict) {
					t.Errorf("append: %v", err)
					return
				}
				mu.Lock()
				conflicts++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	evs, _ := h.Store.ReadStream(ctx, "dev-q", 0)
	if len(evs) != n+1 {
		t.Fatalf("stream has %d events, want %d", len(evs), n+1)
	}
	reasons := map[string]bool{}
	for i, ev := range evs {
		if ev.Version != int64(i+1) {
			t.Fatalf("version %d at index %d: gap or duplicate", ev.Version, i)
		}
		if i > 0 {
			p, err := events.DecodeAs[events.DeviceLockedV1](events.Default, ev.Type, ev.SchemaVersion, ev.Data)
			if err != nil {
				t.Fatal(err)
			}
			if reasons[p.Reason] {
				t.Fatalf("goroutine %s appended twice", p.Reason)
			}
			reasons[p.Reason] = true
		}
	}
	t.Logf("%d conflicts retried", conflicts)
}

// testPaging: a reader pages by position while 32 writers commit; it sees
// every event exactly once, in increasing position order.
func testPaging(t *testing.T, h Harness) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const writers, perWriter = 32, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("dev-p%d", w)
			if _, err := h.Store.Append(ctx, Enroll(id, "user-p")); err != nil {
				t.Error(err)
				return
			}
			for v := int64(1); v < perWriter; v++ {
				if _, err := h.Store.Append(ctx, Then(id, v, Lock("x"))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	seen := map[string]bool{}
	pos := eventstore.Start
	for len(seen) < writers*perWriter && ctx.Err() == nil {
		page, err := h.Store.ReadAll(ctx, pos, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range page {
			if !pos.Less(ev.Position) {
				t.Fatalf("position %s after %s", ev.Position, pos)
			}
			pos = ev.Position
			key := fmt.Sprintf("%s/%d", ev.StreamID, ev.Version)
			if seen[key] {
				t.Fatalf("event %s seen twice", key)
			}
			seen[key] = true
		}
	}
	wg.Wait()
	rest, err := h.Store.ReadAll(ctx, pos, 1000)
	if err != nil || len(rest) != 0 {
		t.Fatalf("after reading everything: %d more events, %v", len(rest), err)
	}
	if len(seen) != writers*perWriter {
		t.Fatalf("saw %d events, want %d", len(seen), writers*perWriter)
	}
}

func testReadUser(t *testing.T, h Harness) {
	ctx := context.Background()
	mustAppend(t, h.Store, Enroll("dev-u1", "alice"), Enroll("dev-u2", "bob"))
	mustAppend(t, h.Store, Then("dev-u1", 1, Lock("x")))
	settle(t, h.Store)
	got, err := h.Store.ReadUser(ctx, "alice", eventstore.Start, 1)
	if err != nil || len(got) != 1 || got[0].StreamID != "dev-u1" || got[0].Version != 1 {
		t.Fatalf("first page: %+v, %v", got, err)
	}
	got, err = h.Store.ReadUser(ctx, "alice", got[0].Position, 10)
	if err != nil || len(got) != 1 || got[0].Version != 2 {
		t.Fatalf("second page: %+v, %v", got, err)
	}
	got, err = h.Store.ReadUser(ctx, "nobody", eventstore.Start, 10)
	if err != nil || len(got) != 0 {
		t.Fatalf("unknown user: %d events, %v", len(got), err)
	}
}

func testHostilePositions(t *testing.T, h Harness) {
	ctx := context.Background()
	mustAppend(t, h.Store, Enroll("dev-h", "user-h"))
	settle(t, h.Store)
	for _, c := range []struct {
		p    eventstore.Position
		want int
	}{
		{eventstore.Position{Tx: math.MaxUint64, Seq: math.MaxInt64}, 0},
		{eventstore.Position{Tx: math.MaxUint64}, 0},
		// Positions order by transaction first: (0, max) is before all.
		{eventstore.Position{Tx: 0, Seq: math.MaxInt64}, 1},
	} {
		got, err := h.Store.ReadAll(ctx, c.p, 10)
		if err != nil || len(got) != c.want {
			t.Errorf("ReadAll(%s) = %d events, %v; want %d", c.p, len(got), err, c.want)
		}
	}
	for _, limit := range []int{-5, 0, math.MaxInt} {
		if _, err := h.Store.ReadAll(ctx, eventstore.Start, limit); err != nil {
			t.Errorf("limit %d: %v", limit, err)
		}
	}
	if evs, err := h.Store.ReadStream(ctx, "dev-h", -3); err != nil || len(evs) > 1 {
		t.Errorf("negative version: %d events, %v", len(evs), err)
	}
}

func testInline(t *testing.T, h Harness) {
	ctx := context.Background()
	mustAppend(t, h.Store, Enroll("dev-in", "user-in"))
	mustAppend(t, h.Store, Then("dev-in", 1, Lock("x")))
	// No runner is started: inline documents exist when Append returns.
	doc, ok, err := h.Runner.Get(ctx, StreamHeadsName, "dev-in")
	if err != nil || !ok {
		t.Fatalf("inline document missing: %v", err)
	}
	head, err := projection.Decode[StreamHead](doc)
	if err != nil || head.Version != 2 || head.LastType != events.DeviceLocked || doc.Owner != "user-in" {
		t.Fatalf("inline document = %+v (owner %q), %v", head, doc.Owner, err)
	}
	// A failed append leaves the inline read model untouched.
	if _, err := h.Store.Append(ctx, Then("dev-in", 2, Lock("y")), Then("dev-other", 4, Lock("y"))); !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("err = %v", err)
	}
	doc, _, _ = h.Runner.Get(ctx, StreamHeadsName, "dev-in")
	if head, _ := projection.Decode[StreamHead](doc); head.Version != 2 {
		t.Fatalf("rolled-back append changed the inline document to version %d", head.Version)
	}
	if _, ok, _ := h.Runner.Get(ctx, StreamHeadsName, "dev-other"); ok {
		t.Fatal("rolled-back append created an inline document")
	}
	if _, _, err := h.Runner.Get(ctx, "no_such_projection", "x"); !errors.Is(err, projection.ErrUnknown) {
		t.Fatalf("unknown projection: %v", err)
	}
}

// testKnown: a per-stream document the command hands over (Append.Known)
// is folded into only when its version is the expected one; a stale or
// unreadable one is read again, so the read model stays right either way.
func testKnown(t *testing.T, h Harness) {
	ctx := context.Background()
	mustAppend(t, h.Store, Enroll("dev-k", "user-k"))
	head := func() (StreamHead, string) {
		t.Helper()
		doc, ok, err := h.Runner.Get(ctx, StreamHeadsName, "dev-k")
		if err != nil || !ok {
			t.Fatalf("document missing: %v", err)
		}
		hd, err := projection.Decode[StreamHead](doc)
		if err != nil {
			t.Fatal(err)
		}
		return *hd, doc.Owner
	}
	current, _, err := h.Runner.Get(ctx, StreamHeadsName, "dev-k")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		known json.RawMessage
	}{
		{"current document", current.Data},
		{"stale document", json.RawMessage(`{"version":0,"last_type":"stale"}`)},
		{"garbage", json.RawMessage(`{"version":`)},
		{"none", nil},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := Then("dev-k", int64(i)+1, Lock(c.name))
			a.UserID = "user-k"
			if c.known != nil {
				a.Known = map[string]json.RawMessage{StreamHeadsName: c.known}
			}
			if _, err := h.Store.Append(ctx, a); err != nil {
				t.Fatal(err)
			}
			got, owner := head()
			if got.Version != int64(i)+2 || got.LastType != events.DeviceLocked || owner != "user-k" {
				t.Fatalf("document = %+v (owner %q)", got, owner)
			}
			current, _, _ = h.Runner.Get(ctx, StreamHeadsName, "dev-k")
		})
	}
	// A known document does not excuse a conflict: the append fails and
	// writes nothing.
	a := Then("dev-k", 1, Lock("late"))
	a.UserID, a.Known = "user-k", map[string]json.RawMessage{StreamHeadsName: current.Data}
	if _, err := h.Store.Append(ctx, a); !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("stale append with a known document: %v", err)
	}
	// Naming another owner than the stream's is refused.
	a = Then("dev-k", 5, Lock("owner"))
	a.UserID = "user-other"
	if _, err := h.Store.Append(ctx, a); !errors.Is(err, eventstore.ErrInvalidAppend) {
		t.Fatalf("another owner: %v", err)
	}
	if got, _ := head(); got.Version != 5 {
		t.Fatalf("refused appends changed the document to version %d", got.Version)
	}
}

// testDue: Reader.Due returns the documents due by a time, the earliest
// first, up to a limit; a document's next version moves its due time.
func testDue(t *testing.T, h Harness) {
	ctx := context.Background()
	start := time.Now()
	for _, id := range []string{"dev-d1", "dev-d2", "dev-d3"} {
		mustAppend(t, h.Store, Enroll(id, "user-d"))
	}
	mustAppend(t, h.Store, Then("dev-d3", 1, Lock("later")))
	keys := func(at time.Time, limit int) []string {
		t.Helper()
		docs, err := h.Runner.Due(ctx, StreamHeadsName, at, limit)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range docs {
			if d.Due.IsZero() || d.Due.After(at) {
				t.Fatalf("document %s due %s, after %s", d.Key, d.Due, at)
			}
			out = append(out, d.Key)
		}
		return out
	}
	cases := []struct {
		name  string
		at    time.Time
		limit int
		want  string
	}{
		{"nothing due yet", start, 10, "[]"},
		{"version 1 documents", start.Add(90 * time.Minute), 10, "[dev-d1 dev-d2]"},
		{"all", start.Add(3 * time.Hour), 10, "[dev-d1 dev-d2 dev-d3]"},
		{"limit", start.Add(3 * time.Hour), 1, "[dev-d1]"},
	}
	for _, c := range cases {
		if got := fmt.Sprint(keys(c.at, c.limit)); got != c.want {
			t.Errorf("%s: due %s, want %s", c.name, got, c.want)
		}
	}
	if _, err := h.Runner.Due(ctx, "no_such_projection", start, 1); !errors.Is(err, projection.ErrUnknown) {
		t.Fatalf("unknown projection: %v", err)
	}
}

// testSharedDocRace: 32 streams of one user append at once; the user's
// shared inline document (changed by all of them) counts every event.
func testSharedDocRace(t *testing.T, h Harness) {
	ctx := context.Background()
	const n = 32
	errs := atOnce(n, func(i int) (err error) {
		id := fmt.Sprintf("dev-shared-%d", i)
		if _, err = h.Store.Append(ctx, Enroll(id, "user-shared")); err != nil {
			return err
		}
		_, err = h.Store.Append(ctx, Then(id, 1, Lock("x")))
		return err
	})
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	doc, ok, err := h.Runner.Get(ctx, UserEventsName, "user-shared")
	if err != nil || !ok {
		t.Fatalf("shared document missing: %v", err)
	}
	if c, err := projection.Decode[UserEvents](doc); err != nil || c.Count != 2*n {
		t.Fatalf("shared document = %+v, %v; want count %d", c, err, 2*n)
	}
}

// atOnce runs f(0..n-1) in n goroutines released together and returns
// their errors.
func atOnce(n int, f func(i int) error) []error {
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = f(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// WaitCaughtUp waits until every projection has applied the events up to
// and including to (the position of the last event the caller appended; the
// head alone is not enough: it may not show a just-committed event yet).
func WaitCaughtUp(t *testing.T, r projection.Runner, to eventstore.Position) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		sts, err := r.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		done := true
		for _, st := range sts {
			if st.Position.Less(to) {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("projections did not reach %s: %+v", to, sts)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Last returns the position of the last event.
func Last(evs []eventstore.Event) eventstore.Position { return evs[len(evs)-1].Position }

func testProjection(t *testing.T, h Harness) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Events appended before the runner starts are delivered once it runs.
	mustAppend(t, h.Store, Enroll("dev-1", "alice"), Enroll("dev-2", "alice"), Enroll("dev-3", "bob"))
	settle(t, h.Store)
	sts, err := h.Runner.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sts {
		if st.Name == readmodel.DevicesName && st.LagEvents != 3 {
			t.Fatalf("lag before running = %d events, want 3", st.LagEvents)
		}
	}
	done := make(chan error, 1)
	go func() { done <- h.Runner.Run(ctx) }()
	mustAppend(t, h.Store, Then("dev-1", 1, PasscodeSet()), Then("dev-2", 1, PasscodeSet(), Lock("passcode_failures")))
	last := mustAppend(t, h.Store, Then("dev-3", 1, eventstore.Pending{Type: events.DeviceRevoked, Payload: events.DeviceRevokedV1{Reason: "user"}}))
	WaitCaughtUp(t, h.Runner, Last(last))

	docs, err := h.Runner.ListByOwner(ctx, readmodel.DevicesName, "alice")
	if err != nil || len(docs) != 2 {
		t.Fatalf("alice's devices: %d, %v", len(docs), err)
	}
	d1, _ := projection.Decode[readmodel.Device](docs[0])
	d2, _ := projection.Decode[readmodel.Device](docs[1])
	if d1.Status != readmodel.DeviceActive || d2.Status != readmodel.DeviceLocked || d2.LockReason != "passcode_failures" {
		t.Fatalf("devices = %+v, %+v", d1, d2)
	}
	incremental, err := h.Runner.All(ctx, readmodel.DevicesName)
	if err != nil || len(incremental) != 3 {
		t.Fatalf("all devices: %d, %v", len(incremental), err)
	}
	inlineBefore, _ := h.Runner.All(ctx, StreamHeadsName)

	// Rebuild while appends keep coming: the result equals the
	// incrementally built read model, row for row.
	stopWriting := make(chan struct{})
	wrote := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stopWriting:
				wrote <- n
				return
			default:
			}
			id := fmt.Sprintf("dev-w%d", n)
			evs, err := h.Store.Append(ctx, Enroll(id, "carol"))
			if err != nil {
				t.Error(err)
			} else {
				last = evs
			}
			n++
		}
	}()
	for _, name := range []string{readmodel.DevicesName, StreamHeadsName, UserEventsName} {
		if err := h.Runner.Rebuild(ctx, name); err != nil {
			t.Fatalf("rebuild %s: %v", name, err)
		}
	}
	close(stopWriting)
	n := <-wrote
	WaitCaughtUp(t, h.Runner, Last(last))
	// The inline read models, rebuilt while appends wrote to them, equal
	// a quiet rebuild: no append wrote to a generation the swap left.
	for _, name := range []string{StreamHeadsName, UserEventsName} {
		live, _ := h.Runner.All(ctx, name)
		if err := h.Runner.Rebuild(ctx, name); err != nil {
			t.Fatal(err)
		}
		quiet, _ := h.Runner.All(ctx, name)
		assertSameDocs(t, quiet, live)
	}
	rebuilt, _ := h.Runner.All(ctx, readmodel.DevicesName)
	if len(rebuilt) != 3+n {
		t.Fatalf("rebuilt read model has %d rows, want %d", len(rebuilt), 3+n)
	}
	// A second, quiet rebuild must equal the incrementally maintained one.
	if err := h.Runner.Rebuild(ctx, readmodel.DevicesName); err != nil {
		t.Fatal(err)
	}
	again, _ := h.Runner.All(ctx, readmodel.DevicesName)
	assertSameDocs(t, rebuilt, again)
	for _, d := range incremental {
		found := false
		for _, a := range again {
			if a.Key == d.Key {
				found = true
				assertSameDocs(t, []projection.Doc{d}, []projection.Doc{a})
			}
		}
		if !found {
			t.Errorf("document %s lost by the rebuild", d.Key)
		}
	}
	if err := h.Runner.Rebuild(ctx, StreamHeadsName); err != nil {
		t.Fatal(err)
	}
	inlineAfter, _ := h.Runner.All(ctx, StreamHeadsName)
	if len(inlineAfter) != len(inlineBefore)+n {
		t.Fatalf("inline rebuild: %d rows, want %d", len(inlineAfter), len(inlineBefore)+n)
	}
	if err := h.Runner.Rebuild(ctx, "no_such_projection"); !errors.Is(err, projection.ErrUnknown) {
		t.Fatalf("rebuild unknown: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runner: %v", err)
	}
}

func assertSameDocs(t *testing.T, want, got []projection.Doc) {
	t.Helper()
	if len(want) == 0 {
		return
	}
	if len(want) != len(got) {
		t.Fatalf("%d documents, want %d", len(got), len(want))
	}
	for i := range want {
		if want[i].Key != got[i].Key || want[i].Owner != got[i].Owner || !jsonEqual(want[i].Data, got[i].Data) {
			t.Errorf("document %d: got %s %s %s, want %s %s %s", i, got[i].Key, got[i].Owner, got[i].Data, want[i].Key, want[i].Owner, want[i].Data)
		}
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}
