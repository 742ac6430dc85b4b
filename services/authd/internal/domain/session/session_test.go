package session

import (
	"strings"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	s := &State{KeyThumbprint: "jkt-1", Current: "t2", Previous: "t1"}
	cases := []struct {
		name, token, jkt string
		want             Decision
	}{
		{"newest token rotates", "t2", "jkt-1", Rotate},
		{"previous token repeats its unused successor", "t1", "jkt-1", Repeat},
		{"older token is reuse", "t0", "jkt-1", Reuse},
		{"unknown token is reuse", "tx", "jkt-1", Reuse},
		{"newest token, another key, is reuse", "t2", "jkt-2", Reuse},
		{"previous token, another key, is reuse", "t1", "jkt-2", Reuse},
	}
	for _, c := range cases {
		if got := s.Decide(c.token, c.jkt); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestActive(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &State{ExpiresAt: t0.Add(12 * time.Hour), IdleExpiresAt: t0.Add(30 * time.Minute)}
	if !s.Active(t0) || s.Active(t0.Add(31*time.Minute)) || s.Active(t0.Add(13*time.Hour)) {
		t.Fatal("idle or absolute end not honoured")
	}
	s.Revoked = true
	if s.Active(t0) {
		t.Fatal("revoked session active")
	}
	var none *State
	if none.Active(t0) {
		t.Fatal("nil session active")
	}
}

func TestTokens(t *testing.T) {
	k, err := NewTokens([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	t0 := k.New()
	if !strings.HasPrefix(t0, "srt_") || len(t0) != 47 || t0 == k.New() {
		t.Fatalf("token %q", t0)
	}
	s1, s1again := k.Successor(t0), k.Successor(t0)
	if s1 != s1again || s1 == t0 || k.ID(s1) == "" {
		t.Fatal("the successor is not derived, stable and well formed")
	}
	id0, id0again := k.ID(t0), k.ID(t0)
	if id0 == k.ID(s1) || id0 != id0again || strings.Contains(id0, t0[4:]) {
		t.Fatal("ids are not distinct, stable and opaque")
	}
	other, _ := NewTokens([]byte(strings.Repeat("j", 32)))
	if other.Successor(t0) == s1 || other.ID(t0) == k.ID(t0) {
		t.Fatal("another key derives the same")
	}
	for _, bad := range []string{"", "srt_", "srt_short", "rt_" + t0[4:], t0 + "A", "srt_" + strings.Repeat("!", 43)} {
		if k.ID(bad) != "" {
			t.Errorf("ID(%q) accepted", bad)
		}
	}
	if _, err := NewTokens([]byte("short")); err == nil {
		t.Fatal("short key accepted")
	}
}
