package sealing

import (
	"bytes"
	"cmp"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"strongroom.dev/services/authd/internal/mounted"
)

// Key is one server sealing key. The private half never leaves this
// package except through KeySetKey: it is used only to open (RFC 9180
// §5.1.1 Recipient), and String/GoString keep it out of logs.
type Key struct {
	// KID is derived from the public key (see kidFor), so every replica
	// loading the same KeySet publishes the same kid.
	KID                  string
	KEMID, KDFID, AEADID uint16
	// NotBefore is the first instant the key is published in
	// sealing-keys.json (zero: no lower bound). It opens before that
	// already: see Ring.Open.
	NotBefore time.Time
	// NotAfter is the last instant the key is published and opens
	// anything, truncated to the second (UTC) so it publishes as plain
	// RFC 3339.
	NotAfter time.Time

	suite *suite
	priv  hpke.PrivateKey
	pub   []byte // the KEM's SerializePublicKey output (RFC 9180 §7.1.1)
}

// String names the key without any key material.
func (k *Key) String() string {
	if k == nil {
		return "sealing.Key(nil)"
	}
	nb := "none"
	if !k.NotBefore.IsZero() {
		nb = k.NotBefore.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("sealing.Key{kid: %s, kem: 0x%04x, not_before: %s, not_after: %s}", k.KID, k.KEMID, nb, k.NotAfter.Format(time.RFC3339))
}

// GoString keeps %#v from printing the private key.
func (k *Key) GoString() string { return k.String() }

// kidFor derives a kid: unpadded base64url of the first 16 bytes of
// SHA-256(kem_id (2 bytes, big endian) || public_key). Deterministic, so
// replicas agree without coordination; the kem_id prefix keeps keys of
// different KEMs apart even if their bytes collided. keyset.SealingKID is
// the operator's copy of this rule; KeysFromKeySet refuses a key whose kid
// differs from the one derived here.
func kidFor(kemID uint16, pub []byte) string {
	h := sha256.New()
	var id [2]byte
	binary.BigEndian.PutUint16(id[:], kemID)
	h.Write(id[:])
	h.Write(pub)
	return b64.EncodeToString(h.Sum(nil)[:16])
}

// newKey wraps a private key of suite s.
func newKey(s *suite, priv hpke.PrivateKey, notAfter time.Time) (*Key, error) {
	if notAfter.IsZero() {
		return nil, errors.New("not_after is required")
	}
	pub := priv.PublicKey().Bytes()
	if len(pub) != s.pubSize {
		return nil, errors.New("unexpected public key size")
	}
	kemID := s.kem.ID()
	return &Key{
		KID:      kidFor(kemID, pub),
		KEMID:    kemID,
		KDFID:    s.kdf.ID(),
		AEADID:   s.aead.ID(),
		NotAfter: notAfter.UTC().Truncate(time.Second),
		suite:    s,
		priv:     priv,
		pub:      pub,
	}, nil
}

// Generate makes a fresh key for kemID (KEMXWing or KEMX25519) with the
// only KDF and AEAD accepted, and no NotBefore. It is for dev mode and
// tests; production replicas share keys through Mount.
func Generate(kemID uint16, notAfter time.Time) (*Key, error) {
	s, err := suiteFor(kemID, KDFHKDFSHA256, AEADAES256GCM)
	if err != nil {
		return nil, fmt.Errorf("sealing: generate: %w", err)
	}
	priv, err := s.kem.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("sealing: generate: %w", err)
	}
	k, err := newKey(s, priv, notAfter)
	if err != nil {
		return nil, fmt.Errorf("sealing: generate: %w", err)
	}
	return k, nil
}

// Public returns the key's sealing-keys.json entry.
func (k *Key) Public() PublicEntry {
	return PublicEntry{
		KID:       k.KID,
		KEMID:     k.KEMID,
		KDFID:     k.KDFID,
		AEADID:    k.AEADID,
		PublicKey: b64.EncodeToString(k.pub),
		NotAfter:  k.NotAfter,
	}
}

// usable reports whether k opens anything at now: NotAfter is inclusive,
// like X.509 notAfter.
func (k *Key) usable(now time.Time) bool { return !now.After(k.NotAfter) }

// listed reports whether k is published at now: NotBefore ≤ now ≤
// NotAfter.
func (k *Key) listed(now time.Time) bool { return !now.Before(k.NotBefore) && k.usable(now) }

// check refuses a Key not made by this package or altered since.
func (k *Key) check() error {
	if k == nil || k.priv == nil || k.suite == nil {
		return errors.New("key not made by sealing.Generate or sealing.KeysFromKeySet")
	}
	s, err := suiteFor(k.KEMID, k.KDFID, k.AEADID)
	if err != nil {
		return err
	}
	if s != k.suite || k.NotAfter.IsZero() || k.KID != kidFor(k.KEMID, k.pub) ||
		!bytes.Equal(k.priv.PublicKey().Bytes(), k.pub) {
		return errors.New("key fields altered after creation")
	}
	return nil
}

// PublicEntry is one entry of /.well-known/sealing-keys.json (CONTRACT.md,
// "Discovery and keys"). Clients seal to it with Seal.
type PublicEntry struct {
	KID    string `json:"kid"`
	KEMID  uint16 `json:"kem_id"`
	KDFID  uint16 `json:"kdf_id"`
	AEADID uint16 `json:"aead_id"`
	// PublicKey is unpadded base64url of the KEM's SerializePublicKey
	// output (RFC 9180 §7.1.1; for X-Wing the 1216-byte ML-KEM-768 ||
	// X25519 encoding of draft-ietf-hpke-pq).
	PublicKey string `json:"public_key"`
	// NotAfter marshals as RFC 3339 (UTC, whole seconds).
	NotAfter time.Time `json:"not_after"`
}

// KeysDocument is the body of /.well-known/sealing-keys.json.
type KeysDocument struct {
	Keys []PublicEntry `json:"keys"`
}

// DefaultMaxAge is how long clients may cache sealing-keys.json at most.
const DefaultMaxAge = 5 * time.Minute

// Ring is the server's set of sealing keys. It is safe for concurrent use.
// Its keys are swapped as a whole (by Replace, or when Mount's file
// changes), so a request never sees half a rotation.
type Ring struct {
	state atomic.Pointer[ringState] // NewRing's keys, swapped by Replace
	// mounted, when set (Mount), holds the keys instead of state.
	mounted *mounted.Value[*ringState]
	now     func() time.Time // nil: time.Now
}

type ringState struct {
	byKID  map[string]*Key
	keys   []*Key        // publication order, see sortKeys
	maxAge time.Duration // see MaxAge
}

// NewRing returns a ring of keys; kids must be unique and at least one key
// is needed. Keys outside their window are kept: keys are judged by time
// at each use (CONTRACT.md, KeySet), so replicas that reloaded at
// different moments still agree on which keys are listed and open.
func NewRing(keys ...*Key) (*Ring, error) {
	st, err := newState(keys)
	if err != nil {
		return nil, fmt.Errorf("sealing: new ring: %w", err)
	}
	r := &Ring{}
	r.state.Store(st)
	return r, nil
}

// Replace swaps the ring's keys for keys, with NewRing's rules. On error
// the ring keeps its current keys. A mounted ring takes its keys from its
// file only, and refuses.
func (r *Ring) Replace(keys ...*Key) error {
	if r.mounted != nil {
		return errors.New("sealing: replace: the ring reads its keys from a mounted KeySet")
	}
	st, err := newState(keys)
	if err != nil {
		return fmt.Errorf("sealing: replace: %w", err)
	}
	r.state.Store(st)
	return nil
}

func newState(keys []*Key) (*ringState, error) {
	if len(keys) == 0 {
		return nil, ErrNoKeys
	}
	st := &ringState{byKID: make(map[string]*Key, len(keys)), maxAge: DefaultMaxAge}
	for i, k := range keys {
		if err := k.check(); err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		if _, dup := st.byKID[k.KID]; dup {
			return nil, fmt.Errorf("key %d: duplicate kid %s", i, k.KID)
		}
		// A copy: later changes to the caller's *Key cannot reach the ring.
		c := *k
		c.pub = bytes.Clone(k.pub)
		st.byKID[c.KID] = &c
		st.keys = append(st.keys, &c)
	}
	sortKeys(st.keys)
	return st, nil
}

// sortKeys orders keys for publication: X-Wing first, then the key that
// lives longest, then by kid, so a client that takes the first entry gets
// the strongest and freshest key, and the document is deterministic.
func sortKeys(keys []*Key) {
	slices.SortFunc(keys, func(a, b *Key) int {
		if (a.KEMID == KEMXWing) != (b.KEMID == KEMXWing) {
			if a.KEMID == KEMXWing {
				return -1
			}
			return 1
		}
		if c := b.NotAfter.Compare(a.NotAfter); c != 0 {
			return c
		}
		return cmp.Compare(a.KID, b.KID)
	})
}

// load returns the current key set, re-reading a mounted ring's file if
// its interval has passed; a zero Ring (or nil) holds none.
func (r *Ring) load() *ringState {
	if r == nil {
		return emptyState
	}
	if r.mounted != nil {
		return r.mounted.Get()
	}
	if st := r.state.Load(); st != nil {
		return st
	}
	return emptyState
}

var emptyState = &ringState{maxAge: DefaultMaxAge}

// clock is the ring's time: Mount's Options.Now, else time.Now.
func (r *Ring) clock() time.Time {
	if r != nil && r.now != nil {
		return r.now()
	}
	return time.Now()
}

// Keys returns the entries to publish now, by the ring's clock (KeysAt).
func (r *Ring) Keys() []PublicEntry { return r.KeysAt(r.clock()) }

// KeysAt returns the entries to publish at now: the keys whose window
// holds now (NotBefore ≤ now ≤ NotAfter). A key published ahead in the
// file is not listed before its NotBefore, and listing depends only on
// the time and the keys, so replicas holding different versions of the
// file publish the same document as long as both versions hold the keys
// listed (the operator publishes each key in the file well before its
// NotBefore, and removes it only after its NotAfter).
func (r *Ring) KeysAt(now time.Time) []PublicEntry {
	st := r.load()
	out := make([]PublicEntry, 0, len(st.keys))
	for _, k := range st.keys {
		if k.listed(now) {
			out = append(out, k.Public())
		}
	}
	return out
}

// Document returns the body of /.well-known/sealing-keys.json,
// {"keys": [...]}, as a KeysDocument.
func (r *Ring) Document() any { return KeysDocument{Keys: r.Keys()} }

// MaxAge is how long clients may cache sealing-keys.json (its
// Cache-Control max-age). For a mounted ring it is half the file's
// publish_ahead, truncated to the second and at most DefaultMaxAge: like
// the JWKS's, shorter than the publish-ahead window (CONTRACT.md,
// "Discovery and keys"). For other rings it is DefaultMaxAge.
func (r *Ring) MaxAge() time.Duration { return r.load().maxAge }

// Open opens sealed, unpadded base64url(enc || ciphertext) sealed to the
// key kid in HPKE base mode with info and aad (RFC 9180 §5.1.1, §5.2).
//
// Any key held opens until its NotAfter (inclusive), including a key
// whose NotBefore is still ahead: a replica whose clock runs a little
// ahead may already have listed it, and the key is in the file already.
//
// It fails with ErrUnknownKID when no key has kid or the key expired
// before now, and with ErrSealInvalid for anything else: longer than
// MaxSealedLen (checked before decoding), not canonical base64url, too
// short, or not authentic under that key, info and aad. The error never
// echoes its input.
func (r *Ring) Open(kid string, sealed string, info, aad []byte, now time.Time) ([]byte, error) {
	if len(sealed) > MaxSealedLen {
		return nil, fmt.Errorf("sealing: open: longer than %d characters: %w", MaxSealedLen, ErrSealInvalid)
	}
	k, ok := r.load().byKID[kid]
	if !ok || !k.usable(now) {
		return nil, fmt.Errorf("sealing: open: %w", ErrUnknownKID)
	}
	pt, err := open(k.priv, k.suite, sealed, MaxSealedLen, info, aad)
	if err != nil {
		return nil, fmt.Errorf("sealing: open: %w", err)
	}
	return pt, nil
}
