package session

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"strongroom.dev/services/authd/internal/hmackey"
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

const testSID = "0b5f2a8e-3c1d-4e7b-9a6f-1d2c3b4a5e6f"

func testTokens(t testing.TB) *Tokens { return tokensWith(t, strings.Repeat("k", 32)) }

func tokensWith(t testing.TB, secret string) *Tokens {
	t.Helper()
	ring, err := hmackey.Static("test", []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewTokens(ring)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// successor is the first rotation of tok ("" for a token Check refuses).
func (t *Tokens) successor(tok string) string {
	p, ok := t.Check(tok)
	if !ok {
		return ""
	}
	s, _, err := t.Next(p)
	if err != nil {
		panic(err)
	}
	return s
}

// seal tags body with the active key, as the server would.
func (t *Tokens) seal(body string) string {
	k, err := t.keys.Active()
	if err != nil {
		panic(err)
	}
	return seal(k, body)
}

func TestTokens(t *testing.T) {
	k := testTokens(t)
	t0, err := k.New(testSID)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := k.New(testSID)
	if !strings.HasPrefix(t0, "srt_"+testSID+".") || len(t0) != 4+len(testSID)+1+43+1+22 ||
		strings.Count(t0, ".") != 2 || t0 == again {
		t.Fatalf("token %q", t0)
	}
	if sid, ok := k.Session(t0); !ok || sid != testSID {
		t.Fatalf("Session(%q) = %q, %v", t0, sid, ok)
	}
	s1, s1again := k.successor(t0), k.successor(t0)
	if s1 != s1again || s1 == t0 || k.ID(s1) == "" || !strings.HasPrefix(s1, "srt_"+testSID+".") {
		t.Fatal("the successor is not derived, stable and well formed")
	}
	if sid, ok := k.Session(s1); !ok || sid != testSID {
		t.Fatal("the successor does not carry the session")
	}
	if s2 := k.successor(s1); s2 == s1 || s2 == t0 || k.ID(s2) == "" {
		t.Fatal("the chain does not continue")
	}
	// Check and Next are Session, ID and Successor at once.
	p0, ok := k.Check(t0)
	if !ok || p0.SessionID != testSID || p0.ID != k.ID(t0) {
		t.Fatalf("Check(%q) = %+v, %v", t0, p0, ok)
	}
	if next, nextID, err := k.Next(p0); err != nil || next != s1 || nextID != k.ID(s1) {
		t.Fatal("Next is not the successor and its id")
	}
	if again, ok := k.Again(p0, k.ID(s1)); !ok || again != s1 {
		t.Fatal("Again does not give the successor again")
	}
	if _, ok := k.Again(p0, k.ID(t0)); ok {
		t.Fatal("Again derives a successor for an id that is not one")
	}
	if next, nextID, err := k.Next(Presented{}); err == nil || next != "" || nextID != "" {
		t.Fatal("Next of an unchecked token")
	}
	if again, ok := k.Again(Presented{}, k.ID(s1)); ok || again != "" {
		t.Fatal("Again of an unchecked token")
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(f, p0); strings.Contains(out, strings.Split(t0, ".")[1]) || strings.Contains(out, t0) {
			t.Fatalf("%s of a checked token prints its secret: %s", f, out)
		}
	}
	secret := strings.Split(t0, ".")[1]
	id0, id0again := k.ID(t0), k.ID(t0)
	if id0 == k.ID(s1) || id0 != id0again || id0 == "" || strings.Contains(id0, secret) || strings.Contains(id0, testSID) {
		t.Fatal("ids are not distinct, stable and opaque")
	}
	// Another key issued none of these: it refuses them outright.
	other := tokensWith(t, strings.Repeat("j", 32))
	if _, ok := other.Session(t0); ok || other.ID(t0) != "" || other.successor(t0) != "" {
		t.Fatal("another key accepts the token")
	}
	o0, _ := other.New(testSID)
	if _, ok := k.Session(o0); ok || k.ID(o0) == k.ID(t0) {
		t.Fatal("a token of another key is accepted")
	}
	for _, sid := range []string{"", "a.b", "a/b", "a b", "é", strings.Repeat("a", MaxIDLen+1), "a\x00"} {
		if tok, err := k.New(sid); err == nil || tok != "" {
			t.Errorf("New(%q) = %q, %v", sid, tok, err)
		}
	}
	if tok, err := k.New(strings.Repeat("a", MaxIDLen)); err != nil || k.ID(tok) == "" {
		t.Errorf("a session id of %d characters: %q, %v", MaxIDLen, tok, err)
	}
	if _, err := hmackey.Static("short", []byte("short")); err == nil {
		t.Fatal("short key accepted")
	}
	if _, err := NewTokens(nil); err == nil {
		t.Fatal("tokens without keys")
	}
}

// TestTokensRefuseHostileInput: nothing but a token this key issued yields
// a session, an id or a successor — not a known session id with a made-up
// secret, not another token's tag, not a second spelling of a real token.
func TestTokensRefuseHostileInput(t *testing.T) {
	k := testTokens(t)
	t0, _ := k.New(testSID)
	t1, _ := k.New(testSID)
	victim, _ := k.New("victim-session")
	parts := strings.Split(strings.TrimPrefix(t0, "srt_"), ".")
	sid, sec, tag := parts[0], parts[1], parts[2]
	tag1 := strings.Split(t1, ".")[2]
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	zeros := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	zeroTag := base64.RawURLEncoding.EncodeToString(make([]byte, 16))
	// seal tags a body with the real key: what the parser must refuse even
	// with a valid tag, because the server never issues that shape.
	seal := func(body string) string { return k.seal(body) }
	cases := []struct{ name, token string }{
		{"empty", ""},
		{"prefix only", "srt_"},
		{"old format (no session, no tag)", "srt_" + sec},
		{"wrong tag", "srt_" + sid + "." + sec + "." + flip(tag, 0)},
		{"wrong tag, last character", "srt_" + sid + "." + sec + "." + flip(tag, len(tag)-1)},
		{"zero tag", "srt_" + sid + "." + sec + "." + zeroTag},
		{"another token's tag", "srt_" + sid + "." + sec + "." + tag1},
		{"swapped session id, valid secret and tag", "srt_victim-session." + sec + "." + tag},
		{"victim's session id, forged secret and tag", "srt_victim-session." + zeros + "." + zeroTag},
		{"victim's secret and tag under another sid", "srt_" + sid + "." + strings.Split(victim, ".")[1] + "." + strings.Split(victim, ".")[2]},
		{"wrong secret", "srt_" + sid + "." + flip(sec, 0) + "." + tag},
		{"truncated by one", t0[:len(t0)-1]},
		{"tag cut off", t0[:len(t0)-len(tag)-1]},
		{"tag empty", t0[:len(t0)-len(tag)]},
		{"session only", "srt_" + sid},
		{"trailing dot", t0 + "."},
		{"extra part", t0 + ".x"},
		{"double dot", "srt_" + sid + ".." + sec + "." + tag},
		{"dot in the session id", "srt_a." + sid + "." + sec + "." + tag},
		{"empty session id", "srt_." + sec + "." + tag},
		{"standard base64 alphabet", "srt_" + sid + "." + "+" + sec[1:] + "." + "/" + tag[1:]},
		{"standard base64 alphabet, tagged", seal("srt_" + sid + "." + "+" + sec[1:])},
		{"padded tag", "srt_" + sid + "." + sec + "." + tag + "=="},
		{"not base64", "srt_" + sid + "." + strings.Repeat("!", 43) + "." + strings.Repeat("!", 22)},
		{"oversize", t0 + strings.Repeat("A", 1<<16)},
		{"oversize session id", "srt_" + strings.Repeat("a", 4096) + "." + sec + "." + tag},
		{"non-ASCII in the session id", "srt_0b5f2a8е-3c1d-4e7b-9a6f-1d2c3b4a5e6f." + sec + "." + tag},
		{"non-ASCII tail", t0 + "é"},
		{"NUL", t0 + "\x00"},
		{"leading space", " " + t0},
		{"trailing newline", t0 + "\n"},
		{"upper-case prefix", "SRT_" + t0[4:]},
		{"upper-case session id", "srt_" + strings.ToUpper(sid) + "." + sec + "." + tag},
		{"another prefix", "rt_" + t0[4:]},
		// Tagged with the real key, still not a shape the server issues:
		{"tagged, non-canonical secret (trailing bits)", seal("srt_" + sid + "." + sec[:42] + "B")},
		{"tagged, line break in the secret", seal("srt_" + sid + "." + sec[:20] + "\n" + sec[21:])},
		{"line break in the tag", "srt_" + sid + "." + sec + "." + tag[:10] + "\n" + tag[11:]},
		{"tagged, 31-byte secret", seal("srt_" + sid + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 31)))},
		{"tagged, 33-byte secret", seal("srt_" + sid + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 33)))},
		{"tagged, session id too long", seal("srt_" + strings.Repeat("a", MaxIDLen+1) + "." + zeros)},
		{"tagged, non-ASCII session id", seal("srt_sé." + zeros)},
		{"tagged, slash in session id", seal("srt_a/b." + zeros)},
	}
	for _, c := range cases {
		if sid, ok := k.Session(c.token); ok || sid != "" {
			t.Errorf("%s: Session = %q, %v", c.name, sid, ok)
		}
		if id := k.ID(c.token); id != "" {
			t.Errorf("%s: ID = %q", c.name, id)
		}
		if s := k.successor(c.token); s != "" {
			t.Errorf("%s: Successor = %q", c.name, s)
		}
		if p, ok := k.Check(c.token); ok || p != (Presented{}) {
			t.Errorf("%s: Check = %+v, %v", c.name, p, ok)
		}
	}
	if seal("srt_"+sid+"."+sec) != t0 {
		t.Fatal("the table's seal is not the token's tag: the tagged cases prove nothing")
	}
}

// FuzzTokens: no token built without the key yields a session, an id or a
// successor unless it is one the key issued; issued ones always do.
func FuzzTokens(f *testing.F) {
	k := testTokens(f)
	issued := map[string]string{}
	// Fuzz workers are processes of their own: the issued tokens must be
	// the same in each, so their first secrets are fixed, not New's.
	for i, sid := range []string{testSID, "s", "a_b-C9", strings.Repeat("z", MaxIDLen)} {
		tok := k.seal("srt_" + sid + "." + base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{byte(i)}, 32)))
		if got, ok := k.Session(tok); !ok || got != sid {
			f.Fatalf("seed %q refused", tok)
		}
		for range 3 {
			issued[tok] = sid
			parts := strings.Split(tok, ".")
			secret, _ := base64.RawURLEncoding.DecodeString(parts[1])
			tag, _ := base64.RawURLEncoding.DecodeString(parts[2])
			f.Add(tok, sid, secret, tag)
			tok = k.successor(tok)
		}
	}
	f.Add("", "", []byte{}, []byte{})
	f.Add("srt_", testSID, make([]byte, 32), make([]byte, 16))
	f.Add("srt_a.b.c", "victim", make([]byte, 32), []byte("0123456789abcdef"))
	f.Fuzz(func(t *testing.T, token, sid string, secret, tag []byte) {
		built := "srt_" + sid + "." + base64.RawURLEncoding.EncodeToString(secret) + "." + base64.RawURLEncoding.EncodeToString(tag)
		for _, tok := range []string{token, built} {
			got, ok := k.Session(tok)
			id, next := k.ID(tok), k.successor(tok)
			p, checked := k.Check(tok)
			want, real := issued[tok]
			if !real {
				if ok || got != "" || id != "" || next != "" || checked || p != (Presented{}) {
					t.Fatalf("%q was made without the key but accepted (sid %q, id %q)", tok, got, id)
				}
				continue
			}
			if !ok || got != want || id == "" || next == "" {
				t.Fatalf("issued token %q refused", tok)
			}
			if succ, succID, _ := k.Next(p); !checked || p.SessionID != want || p.ID != id || succ != next || succID != k.ID(next) {
				t.Fatalf("Check and Next of %q disagree with Session, ID and Successor", tok)
			}
		}
	})
}
