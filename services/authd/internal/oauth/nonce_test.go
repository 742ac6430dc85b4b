package oauth_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"strongroom.dev/services/authd/internal/oauth"
)

// TestNonces: a nonce is good in its epoch and the next, never later,
// never another key's, never altered; the MAC kept for the current epoch
// does not change any of that as the clock moves on (or a request checks
// an older nonce).
func TestNonces(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	n, err := oauth.NewNonces([]byte(strings.Repeat("k", 32)), clock)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := oauth.NewNonces([]byte(strings.Repeat("o", 32)), clock)

	first := n.Issue()
	if n.Issue() != first {
		t.Fatal("two nonces in one epoch differ")
	}
	if err := n.Check(first); err != nil {
		t.Fatalf("current nonce: %v", err)
	}
	if err := n.Check(other.Issue()); err == nil {
		t.Fatal("another key's nonce accepted")
	}
	raw, _ := base64.RawURLEncoding.DecodeString(first)
	raw[len(raw)-1] ^= 1
	if err := n.Check(base64.RawURLEncoding.EncodeToString(raw)); err == nil {
		t.Fatal("an altered nonce accepted")
	}

	now = now.Add(oauth.NonceWindow)
	second := n.Issue()
	if second == first {
		t.Fatal("the nonce did not change with the epoch")
	}
	for range 2 { // the second time, after the old epoch's MAC was computed
		if err := n.Check(first); err != nil {
			t.Fatalf("previous epoch's nonce: %v", err)
		}
		if err := n.Check(second); err != nil {
			t.Fatalf("current nonce: %v", err)
		}
	}
	if n.Issue() != second {
		t.Fatal("checking an older nonce changed the current one")
	}

	now = now.Add(oauth.NonceWindow)
	if err := n.Check(first); err == nil {
		t.Fatal("a nonce two epochs old accepted")
	}
	if err := n.Check(second); err != nil {
		t.Fatalf("previous epoch's nonce: %v", err)
	}
	for _, bad := range []string{"", "x", first + "A", strings.Repeat("A", 32)} {
		if err := n.Check(bad); err == nil {
			t.Errorf("Check(%q) accepted", bad)
		}
	}
}
