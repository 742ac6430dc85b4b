// Package keys is authd's token-signing key source: several keys
// published (in the JWKS), exactly one active (signing). Private keys are
// used only through crypto.Signer, so a KMS or HSM can hold them.
//
// In production the keys come from the operator's token-signing KeySet
// (Mount): each key has a window, and the key that signs is chosen by the
// clock, not by when a replica last read its files (see package
// strongroom.dev/api/keyset). Dev mode and tests use Static.
package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"strongroom.dev/services/dpop"
)

// Key is one token-signing key.
type Key struct {
	// KID is the RFC 7638 SHA-256 thumbprint of the public key.
	KID    string
	Public *ecdsa.PublicKey
	// Signer signs digests (ES256: SHA-256 digests, ASN.1 signatures).
	Signer crypto.Signer
	// NotBefore and NotAfter are the key's window from its KeySet: it
	// signs from NotBefore (unless a later key's NotBefore has passed) and
	// is published, and verifies, until NotAfter (exclusive). Zero values
	// mean no bound (Static keys).
	NotBefore, NotAfter time.Time
}

// live reports whether k is still published at now.
func (k *Key) live(now time.Time) bool { return k.NotAfter.IsZero() || now.Before(k.NotAfter) }

// Source yields the active signing key and the published verification
// keys. Implementations are safe for concurrent use.
type Source interface {
	// Active returns the key to sign with now.
	Active() (*Key, error)
	// Lookup returns a published key by kid.
	Lookup(kid string) (*Key, bool)
	// Published returns every published key, active first.
	Published() []*Key
	// MaxAge is how long a client may cache the published keys: shorter
	// than the time a new key is published before it signs, so a client
	// never meets a kid it could not have fetched.
	MaxAge() time.Duration
}

// DefaultMaxAge is the JWKS cache lifetime when nothing asks for shorter.
const DefaultMaxAge = 5 * time.Minute

// ErrNoActiveKey is returned when no key is active.
var ErrNoActiveKey = errors.New("no active signing key")

// Static is a fixed set of keys with one active.
type Static struct {
	mu     sync.RWMutex
	active *Key
	all    []*Key
}

// NewStatic returns a source publishing all keys and signing with active,
// which must be one of them.
func NewStatic(active *Key, others ...*Key) (*Static, error) {
	if active == nil {
		return nil, ErrNoActiveKey
	}
	all := []*Key{active}
	seen := map[string]bool{active.KID: true}
	for _, k := range others {
		if !seen[k.KID] {
			seen[k.KID] = true
			all = append(all, k)
		}
	}
	return &Static{active: active, all: all}, nil
}

// Active implements Source.
func (s *Static) Active() (*Key, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.active == nil {
		return nil, ErrNoActiveKey
	}
	return s.active, nil
}

// Lookup implements Source.
func (s *Static) Lookup(kid string) (*Key, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, k := range s.all {
		if k.KID == kid {
			return k, true
		}
	}
	return nil, false
}

// Published implements Source.
func (s *Static) Published() []*Key {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]*Key(nil), s.all...)
}

// MaxAge implements Source.
func (s *Static) MaxAge() time.Duration { return DefaultMaxAge }

// FromSigner wraps a crypto.Signer holding an ECDSA P-256 key.
func FromSigner(signer crypto.Signer) (*Key, error) {
	pub, ok := signer.Public().(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("signing key must be ECDSA P-256, got %T", signer.Public())
	}
	return &Key{KID: Thumbprint(pub), Public: pub, Signer: signer}, nil
}

// Generate makes a fresh P-256 key (dev mode, tests).
func Generate() (*Key, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	return FromSigner(priv)
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint of an EC P-256 key,
// the kid of every published key.
func Thumbprint(pub *ecdsa.PublicKey) string { return dpop.Thumbprint(pub) }

// JWKS renders the published keys as a JSON Web Key Set (public halves
// only), each with use "sig", alg ES256 and its thumbprint as kid.
func JWKS(src Source) jose.JSONWebKeySet {
	var set jose.JSONWebKeySet
	for _, k := range src.Published() {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Public, KeyID: k.KID, Algorithm: string(jose.ES256), Use: "sig"})
	}
	return set
}
