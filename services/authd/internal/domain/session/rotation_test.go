package session

import (
	"sync"
	"testing"
	"time"

	"strongroom.dev/services/authd/internal/hmackey"
	"strongroom.dev/services/authd/internal/hmackey/hmackeytest"
)

// TestTokensAcrossKeyRotation: an hmac-secret rotation breaks no refresh
// token. K1 is active until t0+1h and kept until t0+25h (retireAfter 24 h);
// K2, published an hour ahead, takes over at t0+1h.
func TestTokensAcrossKeyRotation(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	switchAt, retireK1 := t0.Add(time.Hour), t0.Add(25*time.Hour)
	k1 := hmackeytest.Key(t, t0.Add(-time.Hour), retireK1)
	k2 := hmackeytest.Key(t, switchAt, t0.Add(49*time.Hour))
	rot := hmackeytest.NewRotation(t, t0, k1)
	ring := rot.Ring()
	tokens, err := NewTokens(ring)
	if err != nil {
		t.Fatal(err)
	}
	keyOf := func(tok string) string {
		t.Helper()
		for _, k := range ring.Verifying() {
			if one := onlyKey(t, rot, k); one != nil {
				if _, ok := one.Session(tok); ok {
					return k.KID
				}
			}
		}
		return ""
	}

	before, _ := tokens.New(testSID)
	if keyOf(before) != k1.KID {
		t.Fatal("a token before the rotation is not made with K1")
	}
	// The operator publishes K2 ahead: K1 still makes tokens.
	rot.Write(k1, k2)
	rot.Set(switchAt.Add(-time.Nanosecond))
	if tok, _ := tokens.New(testSID); keyOf(tok) != k1.KID {
		t.Fatal("K2 is used before its not_before")
	}
	p, ok := tokens.Check(before)
	if !ok {
		t.Fatal("K1's token refused while K2 is published")
	}
	// The first rotation happens just before the switch: its successor is
	// K1's. Parallel refreshes that repeat it after the switch must get
	// the very same successor, though K2 is active by then.
	s1, s1ID, err := tokens.Next(p)
	if err != nil || keyOf(s1) != k1.KID {
		t.Fatalf("successor before the switch: %v", err)
	}
	rot.Set(switchAt)
	if tok, _ := tokens.New(testSID); keyOf(tok) != k2.KID {
		t.Fatal("K2 is not used from its not_before")
	}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			p, ok := tokens.Check(before)
			again, found := tokens.Again(p, s1ID)
			if !ok || !found || again != s1 {
				t.Error("a repeat after the switch does not give the same successor")
			}
		})
	}
	wg.Wait()
	// Rotating K1's successor after the switch moves the chain to K2.
	p1, ok := tokens.Check(s1)
	if !ok || p1.ID != s1ID {
		t.Fatal("K1's successor is refused after the switch")
	}
	s2, s2ID, err := tokens.Next(p1)
	if err != nil || keyOf(s2) != k2.KID || tokens.ID(s2) != s2ID {
		t.Fatal("the chain does not move to K2")
	}
	// K1's tokens work until K1 retires, and not a moment longer.
	rot.Set(retireK1.Add(-time.Nanosecond))
	if _, ok := tokens.Check(s1); !ok {
		t.Fatal("K1's token refused before K1 retires")
	}
	rot.Set(retireK1)
	if _, ok := tokens.Check(s1); ok {
		t.Fatal("K1's token accepted after K1 retired")
	}
	if _, ok := tokens.Check(s2); !ok {
		t.Fatal("K2's token refused")
	}
	// The operator removes K1 from the file: same answers.
	rot.Write(k2)
	if _, ok := tokens.Check(s1); ok {
		t.Fatal("a removed key still checks tokens")
	}
	// A revocation (K2 removed at once) ends K2's tokens at once.
	rot.Write()
	if _, ok := tokens.Check(s2); ok {
		t.Fatal("a token of a revoked key is accepted")
	}
	if _, err := tokens.New(testSID); err == nil {
		t.Fatal("a token made with no active key")
	}
}

// onlyKey is a ring holding only k, as of the rotation's clock: which key
// made a token is which single-key ring accepts it.
func onlyKey(t *testing.T, rot *hmackeytest.Rotation, k *hmackey.Key) *Tokens {
	t.Helper()
	for _, fk := range rot.Keys() {
		if fk.KID == k.KID {
			one := hmackeytest.NewRotation(t, rot.Now(), fk).Ring()
			tok, err := NewTokens(one)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
	}
	return nil
}
