package activation

import (
	"strings"
	"testing"
	"time"

	"strongroom.dev/services/authd/internal/hmackey"
)

func codesWith(t *testing.T, kid, secret string) *Codes {
	t.Helper()
	ring, err := hmackey.Static(kid, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCodes(ring)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCodes(t *testing.T) {
	c := codesWith(t, "s1", strings.Repeat("k", 32))
	code, id, kid, err := c.New()
	if err != nil || len(code) != 32 || kid != "s1" {
		t.Fatalf("code %q, key %q, %v", code, kid, err)
	}
	if strings.Contains(id, code) {
		t.Fatal("the stream id contains the code")
	}
	for _, typed := range []string{code, strings.ToLower(code), code[:4] + "-" + code[4:8] + " " + code[8:]} {
		if got, ok := c.StreamIDs(typed); !ok || len(got) != 1 || got[0] != id {
			t.Errorf("StreamIDs(%q) = %q, %v", typed, got, ok)
		}
	}
	other := codesWith(t, "s2", strings.Repeat("j", 32))
	if got, _ := other.StreamIDs(code); got[0] == id {
		t.Fatal("another key finds the same stream")
	}
	for _, bad := range []string{"", "1", code[:31], code + "A", strings.Repeat("A", 65), "!!!!", code[:31] + "1"} {
		if ids, ok := c.StreamIDs(bad); ok || ids != nil {
			t.Errorf("StreamIDs(%q) accepted", bad)
		}
	}
	if _, err := NewCodes(nil); err == nil {
		t.Fatal("codes without keys")
	}
}

func TestUsable(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &State{Purpose: Enroll, ExpiresAt: t0.Add(24 * time.Hour)}
	cases := []struct {
		name    string
		s       *State
		now     time.Time
		purpose string
		want    bool
	}{
		{"fresh", s, t0, Enroll, true},
		{"wrong purpose", s, t0, Reset, false},
		{"expired", s, t0.Add(24 * time.Hour), Enroll, false},
		{"used", &State{Purpose: Enroll, ExpiresAt: t0.Add(time.Hour), Consumed: true}, t0, Enroll, false},
		{"unknown", nil, t0, Enroll, false},
	}
	for _, c := range cases {
		if got := c.s.Usable(c.now, c.purpose); got != c.want {
			t.Errorf("%s: %v", c.name, got)
		}
	}
}
