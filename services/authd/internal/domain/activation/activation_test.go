package activation

import (
	"strings"
	"testing"
	"time"
)

func TestCodes(t *testing.T) {
	c, err := NewCodes("s1", []byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	code, id, err := c.New()
	if err != nil || len(code) != 32 {
		t.Fatalf("code %q, %v", code, err)
	}
	if strings.Contains(id, code) {
		t.Fatal("the stream id contains the code")
	}
	for _, typed := range []string{code, strings.ToLower(code), code[:4] + "-" + code[4:8] + " " + code[8:]} {
		if got, ok := c.StreamID(typed); !ok || got != id {
			t.Errorf("StreamID(%q) = %q, %v", typed, got, ok)
		}
	}
	other, _ := NewCodes("s2", []byte(strings.Repeat("j", 32)))
	if got, _ := other.StreamID(code); got == id {
		t.Fatal("another key finds the same stream")
	}
	for _, bad := range []string{"", "1", code[:31], code + "A", strings.Repeat("A", 65), "!!!!", code[:31] + "1"} {
		if _, ok := c.StreamID(bad); ok {
			t.Errorf("StreamID(%q) accepted", bad)
		}
	}
	if _, err := NewCodes("s", []byte("short")); err == nil {
		t.Fatal("short key accepted")
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
