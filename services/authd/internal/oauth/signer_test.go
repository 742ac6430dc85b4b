package oauth_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	fjwt "github.com/ory/fosite/token/jwt"

	"strongroom.dev/services/authd/internal/keys"
	"strongroom.dev/services/authd/internal/oauth"
)

// rotatingKeys is a key source whose active key can change, as a
// deployment's does when it rotates.
type rotatingKeys struct {
	mu     sync.Mutex
	active *keys.Key
	all    []*keys.Key
}

func (r *rotatingKeys) Active() (*keys.Key, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.active, nil
}

func (r *rotatingKeys) Lookup(kid string) (*keys.Key, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range r.all {
		if k.KID == kid {
			return k, true
		}
	}
	return nil, false
}

func (r *rotatingKeys) Published() []*keys.Key {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*keys.Key(nil), r.all...)
}

func (r *rotatingKeys) MaxAge() time.Duration { return keys.DefaultMaxAge }

func (r *rotatingKeys) rotate(k *keys.Key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.active, r.all = k, append(r.all, k)
}

// TestSignerTokens: an access token is a compact JWS that go-jose, a JOSE
// library of its own, verifies with the active key (ES256, typ at+jwt, kid
// = the key's thumbprint) and whose payload is the claims; after a
// rotation, tokens are signed by the new key under its kid, and tokens of
// the old key still verify while it is published.
func TestSignerTokens(t *testing.T) {
	k1, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	src := &rotatingKeys{active: k1, all: []*keys.Key{k1}}
	s := &oauth.Signer{Keys: src}
	ctx := context.Background()
	claims := fjwt.MapClaims{"iss": "https://auth.bank.example", "sub": "user-1", "aud": []string{"https://api.bank.example"},
		"exp": time.Now().Add(5 * time.Minute).Unix(), "iat": time.Now().Unix(), "jti": "j-1", "sid": "s-1",
		"cnf": map[string]any{"jkt": "thumb"}, "note": "<&> \u2028"}

	check := func(t *testing.T, token, sig string, k *keys.Key) {
		t.Helper()
		jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatalf("go-jose cannot parse the token: %v", err)
		}
		h := jws.Signatures[0].Header
		if h.KeyID != k.KID || h.Algorithm != "ES256" || h.ExtraHeaders[jose.HeaderType] != oauth.AccessTokenType {
			t.Fatalf("header = kid %q alg %q typ %v", h.KeyID, h.Algorithm, h.ExtraHeaders[jose.HeaderType])
		}
		raw, err := jws.Verify(k.Public)
		if err != nil {
			t.Fatalf("go-jose: the signature does not verify with the active key: %v", err)
		}
		want, _ := json.Marshal(map[string]any(claims))
		if string(raw) != string(want) {
			t.Fatalf("payload = %s, want %s", raw, want)
		}
		if got, err := s.GetSignature(ctx, token); err != nil || got != sig {
			t.Fatalf("signature = %q (%v), Generate said %q", got, err, sig)
		}
		if _, err := s.Decode(ctx, token); err != nil {
			t.Fatalf("Decode: %v", err)
		}
	}

	old, oldSig, err := s.Generate(ctx, claims, nil)
	if err != nil {
		t.Fatal(err)
	}
	check(t, old, oldSig, k1)
	again, againSig, err := s.Generate(ctx, claims, nil)
	if err != nil {
		t.Fatal(err)
	}
	check(t, again, againSig, k1)

	src.rotate(k2)
	tok, sig, err := s.Generate(ctx, claims, nil)
	if err != nil {
		t.Fatal(err)
	}
	check(t, tok, sig, k2)
	if _, err := s.Decode(ctx, old); err != nil {
		t.Fatalf("a token of the previous key, still published: %v", err)
	}
}
