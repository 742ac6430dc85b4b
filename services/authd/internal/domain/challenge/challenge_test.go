package challenge

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/eventstore"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// ev is an event of the challenge stream id, encoded as the store holds it.
func ev(t *testing.T, id string, version int64, typ string, payload any) eventstore.Event {
	t.Helper()
	data, v, err := events.Default.Encode(typ, payload)
	if err != nil {
		t.Fatal(err)
	}
	return eventstore.Event{StreamID: id, StreamType: events.StreamChallenge, Version: version, Type: typ,
		SchemaVersion: v, Data: data, UserID: "alice", OccurredAt: t0.Add(time.Duration(version) * time.Second)}
}

func issued(t *testing.T, id, device string, expires time.Time) eventstore.Event {
	t.Helper()
	return ev(t, id, 1, events.ChallengeIssued, events.ChallengeIssuedV1{DeviceID: device, ExpiresAt: expires})
}

func consumed(t *testing.T, id string) eventstore.Event {
	t.Helper()
	return ev(t, id, 2, events.ChallengeConsumed, events.ChallengeConsumedV1{SessionID: "ses_1", KeyThumbprint: "jkt", AssertionJTI: "jti"})
}

func TestNew(t *testing.T) {
	seen := map[string]bool{}
	for range 64 {
		value, id, err := New()
		if err != nil {
			t.Fatal(err)
		}
		if len(value) != 43 {
			t.Fatalf("value %q has %d characters, want 43", value, len(value))
		}
		b, err := base64.RawURLEncoding.Strict().DecodeString(value)
		if err != nil || len(b) != Size {
			t.Fatalf("value %q is not unpadded base64url of %d bytes: %v", value, Size, err)
		}
		got, ok := ID(value)
		if !ok || got != id {
			t.Fatalf("ID(%q) = %q, %v; New said %q", value, got, ok, id)
		}
		if !strings.HasPrefix(id, "chl_") || strings.Contains(id, value) {
			t.Fatalf("id %q: want chl_ and a hash, never the value", id)
		}
		if seen[value] || seen[id] {
			t.Fatalf("New repeated %q / %q", value, id)
		}
		seen[value], seen[id] = true, true
	}
}

func TestID(t *testing.T) {
	zero := strings.Repeat("A", 43) // 32 zero bytes
	id, ok := ID(zero)
	if !ok {
		t.Fatalf("ID(%q) refused", zero)
	}
	// The id is fixed by the value: a stored stream must be found again
	// after a restart, by any replica.
	if again, _ := ID(zero); again != id {
		t.Fatalf("ID is not deterministic: %q, %q", id, again)
	}
	if len(id) != len("chl_")+43 {
		t.Fatalf("id %q: want chl_ and a SHA-256 in base64url", id)
	}
	cases := []struct{ name, value string }{
		{"empty", ""},
		{"42 characters", zero[:42]},
		{"44 characters", zero + "A"},
		{"padded", zero + "="},
		{"padding inside", zero[:42] + "="},
		{"standard base64 +", "+" + zero[1:]},
		{"standard base64 /", zero[:20] + "/" + zero[21:]},
		{"a space", zero[:42] + " "},
		{"a newline", zero[:42] + "\n"},
		{"a dot", zero[:42] + "."},
		{"a non-ASCII letter", zero[:41] + "é"}, // 43 bytes
		// 43 characters carry 258 bits: the last one's two low bits must
		// be zero, or two strings would name the same 32 bytes.
		{"non-canonical last character", zero[:42] + "B"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got, ok := ID(c.value); ok || got != "" {
				t.Fatalf("ID(%q) = %q, %v", c.value, got, ok)
			}
		})
	}
}

// TestIDDistinct checks distinct values name distinct streams, and values
// differing in one bit too.
func TestIDDistinct(t *testing.T) {
	b := make([]byte, Size)
	base, ok := ID(base64.RawURLEncoding.EncodeToString(b))
	if !ok {
		t.Fatal("refused")
	}
	seen := map[string]bool{base: true}
	for i := range Size * 8 {
		c := make([]byte, Size)
		c[i/8] = 1 << (i % 8)
		id, ok := ID(base64.RawURLEncoding.EncodeToString(c))
		if !ok {
			t.Fatalf("bit %d refused", i)
		}
		if seen[id] {
			t.Fatalf("bit %d: id %q seen before", i, id)
		}
		seen[id] = true
	}
}

func TestFold(t *testing.T) {
	exp := t0.Add(DefaultLifetime)
	cases := []struct {
		name   string
		events func(t *testing.T) []eventstore.Event
		want   *State
	}{
		{"no events", func(*testing.T) []eventstore.Event { return nil }, nil},
		{"issued", func(t *testing.T) []eventstore.Event {
			return []eventstore.Event{issued(t, "chl_a", "dev_1", exp)}
		}, &State{ID: "chl_a", DeviceID: "dev_1", UserID: "alice", ExpiresAt: exp, Version: 1}},
		{"issued then consumed", func(t *testing.T) []eventstore.Event {
			return []eventstore.Event{issued(t, "chl_a", "dev_1", exp), consumed(t, "chl_a")}
		}, &State{ID: "chl_a", DeviceID: "dev_1", UserID: "alice", ExpiresAt: exp, Consumed: true, Version: 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Fold(events.Default, c.events(t))
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case c.want == nil && got != nil:
				t.Fatalf("Fold = %+v, want nil", got)
			case c.want != nil && (got == nil || *got != *c.want):
				t.Fatalf("Fold = %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestFoldRefuses(t *testing.T) {
	exp := t0.Add(DefaultLifetime)
	cases := []struct {
		name   string
		events func(t *testing.T) []eventstore.Event
	}{
		{"a device stream", func(t *testing.T) []eventstore.Event {
			e := issued(t, "dev_1", "dev_1", exp)
			e.StreamType = events.StreamDevice
			return []eventstore.Event{e}
		}},
		{"a challenge stream then another stream", func(t *testing.T) []eventstore.Event {
			e := consumed(t, "chl_a")
			e.StreamType = events.StreamSession
			return []eventstore.Event{issued(t, "chl_a", "dev_1", exp), e}
		}},
		{"no stream type", func(t *testing.T) []eventstore.Event {
			e := issued(t, "chl_a", "dev_1", exp)
			e.StreamType = ""
			return []eventstore.Event{e}
		}},
		{"unknown event type", func(t *testing.T) []eventstore.Event {
			e := issued(t, "chl_a", "dev_1", exp)
			e.Type = "challenge.renewed"
			return []eventstore.Event{e}
		}},
		{"unknown schema version", func(t *testing.T) []eventstore.Event {
			e := issued(t, "chl_a", "dev_1", exp)
			e.SchemaVersion = 99
			return []eventstore.Event{e}
		}},
		{"malformed data", func(t *testing.T) []eventstore.Event {
			e := issued(t, "chl_a", "dev_1", exp)
			e.Data = []byte(`[]`)
			return []eventstore.Event{e}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got, err := Fold(events.Default, c.events(t)); err == nil {
				t.Fatalf("Fold = %+v, want an error", got)
			}
		})
	}
}

func TestUsable(t *testing.T) {
	exp := t0.Add(DefaultLifetime)
	fold := func(t *testing.T, evs ...eventstore.Event) *State {
		t.Helper()
		s, err := Fold(events.Default, evs)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cases := []struct {
		name   string
		state  func(t *testing.T) *State
		device string
		now    time.Time
		ok     bool
	}{
		{"right device when issued", func(t *testing.T) *State { return fold(t, issued(t, "chl_a", "dev_1", exp)) }, "dev_1", t0, true},
		{"right device a nanosecond before expiry", func(t *testing.T) *State { return fold(t, issued(t, "chl_a", "dev_1", exp)) },
			"dev_1", exp.Add(-time.Nanosecond), true},
		{"at expiry", func(t *testing.T) *State { return fold(t, issued(t, "chl_a", "dev_1", exp)) }, "dev_1", exp, false},
		{"after expiry", func(t *testing.T) *State { return fold(t, issued(t, "chl_a", "dev_1", exp)) }, "dev_1", exp.Add(time.Second), false},
		{"another device", func(t *testing.T) *State { return fold(t, issued(t, "chl_a", "dev_1", exp)) }, "dev_2", t0, false},
		{"no device", func(t *testing.T) *State { return fold(t, issued(t, "chl_a", "dev_1", exp)) }, "", t0, false},
		{"consumed", func(t *testing.T) *State {
			return fold(t, issued(t, "chl_a", "dev_1", exp), consumed(t, "chl_a"))
		}, "dev_1", t0, false},
		{"unknown: no events", func(t *testing.T) *State { return fold(t) }, "dev_1", t0, false},
		{"nil state", func(*testing.T) *State { return nil }, "dev_1", t0, false},
		{"zero state", func(*testing.T) *State { return &State{} }, "", t0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.state(t).Usable(c.device, c.now)
			if c.ok && err != nil {
				t.Fatalf("Usable: %v", err)
			}
			if !c.ok && !errors.Is(err, ErrUnusable) {
				t.Fatalf("Usable = %v, want ErrUnusable", err)
			}
		})
	}
}
