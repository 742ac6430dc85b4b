// Package hmackey is authd's HMAC-SHA-256 key ring: the keys that tag
// refresh tokens and look up activation codes (CONTRACT.md, Enrollment:
// "stored only as a keyed HMAC"). New values are made with the key active
// now; values are checked with every key not yet retired, so a rotation
// never breaks a live refresh token or activation code: the operator's
// hmac-secret KeySet keeps a key for its retireAfter (at least the 24 h an
// activation code lives) after its successor takes over.
//
// In production the keys come from the mounted KeySet (Mount) and the key
// in use is chosen by the clock, like every KeySet key (see package
// strongroom.dev/api/keyset). Dev mode uses Static.
package hmackey

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"slices"
	"time"

	"strongroom.dev/api/keyset"
	"strongroom.dev/services/authd/internal/mounted"
)

// MinSecret is the shortest secret accepted: 256 bits.
const MinSecret = 32

// Key is one HMAC key. Its secret never leaves the package: callers get
// HMAC instances from New.
type Key struct {
	// KID names the key (keyset.KID for HS256, or a fixed name for a
	// static key); it may be recorded next to what the key made.
	KID string
	// NotBefore and NotAfter are the key's KeySet window (zero: unbounded).
	NotBefore, NotAfter time.Time

	secret []byte
}

// New returns an HMAC-SHA-256 keyed with k.
func (k *Key) New() hash.Hash { return hmac.New(sha256.New, k.secret) }

// String names the key, never its secret.
func (k *Key) String() string { return "hmac key " + k.KID }

// GoString is String, so %#v cannot print the secret.
func (k *Key) GoString() string { return k.String() }

// ErrNoActiveKey: no key's window holds now.
var ErrNoActiveKey = errors.New("no active HMAC key")

// Ring is a set of HMAC keys, one active at a time. It is safe for
// concurrent use.
type Ring struct {
	static *set
	v      *mounted.Value[*set]
	now    func() time.Time
}

// set is one version of the keys.
type set struct {
	file  *keyset.File
	byKID map[string]*Key
}

// Static returns a ring of one key that never expires (dev mode; a
// database-held secret shared by dev-mode replicas).
func Static(kid string, secret []byte) (*Ring, error) {
	if len(secret) < MinSecret {
		return nil, fmt.Errorf("hmac key %s: secret must be at least %d bytes", kid, MinSecret)
	}
	forever := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	k := &Key{KID: kid, secret: slices.Clone(secret)}
	f := &keyset.File{Purpose: keyset.PurposeHMACSecret, Keys: []keyset.Key{{KID: kid, NotAfter: forever}}}
	return &Ring{static: &set{file: f, byKID: map[string]*Key{kid: k}}, now: time.Now}, nil
}

// Mount reads the hmac-secret KeySet in dir (dir/keys.json) and keeps it
// up to date. need is the longest lifetime of what authd MACs (the
// activation-code lifetime): a KeySet keeping keys for less is refused.
func Mount(dir string, need time.Duration, o mounted.Options) (*Ring, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	v, err := mounted.KeySet(dir, keyset.PurposeHMACSecret, need, newSet, o)
	if err != nil {
		return nil, fmt.Errorf("hmac keys: %w", err)
	}
	return &Ring{v: v, now: o.Now}, nil
}

func newSet(f *keyset.File) (*set, error) {
	s := &set{file: f, byKID: make(map[string]*Key, len(f.Keys))}
	for _, fk := range f.Keys {
		if len(fk.PrivateKey) < MinSecret {
			return nil, fmt.Errorf("key %s: secret shorter than %d bytes", fk.KID, MinSecret)
		}
		s.byKID[fk.KID] = &Key{KID: fk.KID, NotBefore: fk.NotBefore, NotAfter: fk.NotAfter, secret: slices.Clone(fk.PrivateKey)}
	}
	return s, nil
}

func (r *Ring) load() *set {
	if r.v != nil {
		return r.v.Get()
	}
	return r.static
}

// Active returns the key to make new values with now: the one whose
// not_before passed last.
func (r *Ring) Active() (*Key, error) {
	s := r.load()
	if fk, ok := s.file.Active(r.now()); ok {
		return s.byKID[fk.KID], nil
	}
	return nil, ErrNoActiveKey
}

// Verifying returns the keys to check a value with, the active one first
// (most values were made with it), then the others not yet retired,
// newest first. Keys published ahead of their window are included: a
// replica whose clock is slightly ahead may already use one.
func (r *Ring) Verifying() []*Key {
	s := r.load()
	published := s.file.Published(r.now())
	out := make([]*Key, 0, len(published))
	for _, fk := range published {
		out = append(out, s.byKID[fk.KID])
	}
	return out
}
