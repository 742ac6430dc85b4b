// Package keys is authd's token-signing key source: several keys
// published (in the JWKS), exactly one active (signing). Private keys are
// used only through crypto.Signer, so a KMS or HSM can hold them; the
// operator's KeySets replace the file source later without changing users.
package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

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
}

// Source yields the active signing key and the published verification
// keys. Implementations are safe for concurrent use.
type Source interface {
	// Active returns the key to sign with now.
	Active() (*Key, error)
	// Lookup returns a published key by kid.
	Lookup(kid string) (*Key, bool)
	// Published returns every published key, active first.
	Published() []*Key
}

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

// LoadDir reads every *.pem file in dir as a PKCS#8 (or SEC 1) ECDSA P-256
// private key and publishes them all; the key in the file named active
// (e.g. "2026-11.pem") signs. With exactly one key, active may be empty.
func LoadDir(dir, active string) (*Static, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.pem"))
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("signing keys: no *.pem file in %s", dir)
	}
	if active == "" && len(files) == 1 {
		active = filepath.Base(files[0])
	}
	var act *Key
	var others []*Key
	for _, f := range files {
		k, err := loadPEM(f)
		if err != nil {
			return nil, err
		}
		if filepath.Base(f) == active {
			act = k
		} else {
			others = append(others, k)
		}
	}
	if act == nil {
		return nil, fmt.Errorf("signing keys: active key file %q not found in %s", active, dir)
	}
	return NewStatic(act, others...)
}

func loadPEM(path string) (*Key, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", filepath.Base(path), err)
	}
	block, rest := pem.Decode(raw)
	if block == nil || strings.TrimSpace(string(rest)) != "" {
		return nil, fmt.Errorf("signing key %s: want exactly one PEM block", filepath.Base(path))
	}
	var priv any
	switch block.Type {
	case "PRIVATE KEY":
		priv, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		priv, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("signing key %s: PEM type %q, want PRIVATE KEY", filepath.Base(path), block.Type)
	}
	if err != nil {
		// Parser errors never quote key material.
		return nil, fmt.Errorf("signing key %s: %w", filepath.Base(path), err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("signing key %s: not a signing key", filepath.Base(path))
	}
	return FromSigner(signer)
}
