package sealing

import (
	"errors"
	"fmt"
	"time"

	"strongroom.dev/api/keyset"
	"strongroom.dev/services/authd/internal/mounted"
)

// Replicas share sealing keys through the operator's payload-sealing
// KeySet: a Secret mounted as a directory holding keys.json (package
// keyset), which every replica reads, so all derive the same kids. Each
// key's algorithm names its KEM and its private_key is the KEM's
// SerializePrivateKey output (RFC 9180 §7.1.2):
//
//   - MLKEM768-X25519 (X-Wing, KEM 0x647a): the 32-byte seed of
//     draft-ietf-hpke-pq / draft-connolly-cfrg-xwing-kem, from which both
//     the ML-KEM-768 and the X25519 private keys are expanded. It is the
//     form hpke.PrivateKey.Bytes returns and KEM.NewPrivateKey takes, and
//     it is 32 bytes instead of the 2400-byte expanded ML-KEM key.
//   - DHKEM-X25519 (KEM 0x0020): the 32-byte X25519 scalar (RFC 7748),
//     clamped as §7.1.2 requires on output; unclamped scalars are accepted
//     on input since X25519 clamps anyway.
//
// The KDF and AEAD are not in the file: there is only one of each.

// Mount reads the payload-sealing KeySet in dir (dir/keys.json) into a
// ring that keeps up with it: the keys are prepared once per version of
// the file and looked up on each use, the file being looked at again at
// most once per o.Interval (mounted.KeySet). need is the longest lifetime
// of anything sealed to these keys that authd still opens: a file
// promising to keep keys for less (protected_lifetime) is refused. So is
// a file of another purpose, with a key KeysFromKeySet refuses, or with no
// key; at start Mount fails, later the ring keeps its last good keys.
// The ring's clock for Keys and Document is o.Now (time.Now).
//
// Every error wraps ErrKeyFile and holds no key material.
func Mount(dir string, need time.Duration, o mounted.Options) (*Ring, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	v, err := mounted.KeySet(dir, keyset.PurposePayloadSealing, need, prepare, o)
	if err != nil {
		return nil, fmt.Errorf("sealing: payload-sealing keys: %w: %w", ErrKeyFile, err)
	}
	return &Ring{mounted: v, now: o.Now}, nil
}

// prepare turns one version of keys.json into the ring's state.
func prepare(f *keyset.File) (*ringState, error) {
	keys, err := keysFromKeySet(f)
	if err != nil {
		return nil, err
	}
	st, err := newState(keys)
	if err != nil {
		return nil, err
	}
	st.maxAge = min(DefaultMaxAge, (time.Duration(f.PublishAhead) / 2).Truncate(time.Second))
	return st, nil
}

// KeysFromKeySet turns the keys of a payload-sealing KeySet into Keys,
// each with its window. It refuses a set of another purpose or without
// keys, and a key whose algorithm is not a sealing KEM, whose private key
// is not one of its KEM, whose window is empty, whose kid differs from
// the one this package derives (kidFor), or that appears twice. Errors
// wrap ErrKeyFile, name keys by their index and never contain key
// material.
func KeysFromKeySet(f *keyset.File) ([]*Key, error) {
	keys, err := keysFromKeySet(f)
	if err != nil {
		return nil, fmt.Errorf("sealing: %w: %w", ErrKeyFile, err)
	}
	return keys, nil
}

func keysFromKeySet(f *keyset.File) ([]*Key, error) {
	if f == nil {
		return nil, errors.New("no key set")
	}
	if f.Purpose != keyset.PurposePayloadSealing {
		return nil, fmt.Errorf("keys of purpose %q, want %q", f.Purpose, keyset.PurposePayloadSealing)
	}
	if len(f.Keys) == 0 {
		return nil, ErrNoKeys
	}
	if len(f.Keys) > keyset.MaxKeys {
		return nil, fmt.Errorf("%d keys, at most %d", len(f.Keys), keyset.MaxKeys)
	}
	keys := make([]*Key, 0, len(f.Keys))
	index := make(map[string]int, len(f.Keys)) // kid → index
	for i, fk := range f.Keys {
		k, err := keyFromKeySet(fk)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		if j, dup := index[k.KID]; dup {
			return nil, fmt.Errorf("keys %d and %d are the same key", j, i)
		}
		index[k.KID] = i
		keys = append(keys, k)
	}
	return keys, nil
}

func keyFromKeySet(fk keyset.Key) (*Key, error) {
	var s *suite
	switch fk.Algorithm {
	case keyset.XWing:
		s = suiteXWing
	case keyset.X25519:
		s = suiteX25519
	default:
		// Not quoted: the field is the operator's, but may hold anything.
		return nil, fmt.Errorf("algorithm is not %s or %s", keyset.XWing, keyset.X25519)
	}
	if fk.NotBefore.IsZero() || fk.NotAfter.IsZero() || !fk.NotBefore.Before(fk.NotAfter) {
		return nil, errors.New("not_before must be before not_after")
	}
	if len(fk.PrivateKey) != s.privSize {
		return nil, fmt.Errorf("private_key: want %d bytes for %s", s.privSize, s.algorithm)
	}
	priv, err := s.kem.NewPrivateKey(fk.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("private_key: not a valid %s private key", s.algorithm)
	}
	k, err := newKey(s, priv, fk.NotAfter)
	if err != nil {
		return nil, err
	}
	if k.NotAfter.Before(fk.NotBefore) {
		// newKey truncated not_after to the second: the key would never
		// be listed nor open.
		return nil, errors.New("not_after, truncated to the second, is before not_before")
	}
	if k.KID != fk.KID {
		// Neither kid is quoted: the file's may be anything.
		return nil, errors.New("kid does not match its private key")
	}
	k.NotBefore = fk.NotBefore.UTC()
	return k, nil
}

// KeySetKey returns k as a key of a payload-sealing keys.json, with k's
// window (NotBefore must be set, and before NotAfter), for dev tooling
// and tests. The result holds the private key (its PrivateKey is
// redacted when printed, not when marshalled): write keys.json with mode
// 0600.
func (k *Key) KeySetKey() (keyset.Key, error) {
	if err := k.check(); err != nil {
		return keyset.Key{}, fmt.Errorf("sealing: key set key: %w", err)
	}
	if k.NotBefore.IsZero() || !k.NotBefore.Before(k.NotAfter) {
		return keyset.Key{}, errors.New("sealing: key set key: NotBefore must be set and before NotAfter")
	}
	priv, err := k.priv.Bytes()
	if err != nil {
		return keyset.Key{}, fmt.Errorf("sealing: key set key: %w", err)
	}
	if len(priv) != k.suite.privSize {
		clear(priv)
		return keyset.Key{}, errors.New("sealing: key set key: unexpected private key size")
	}
	return keyset.Key{
		KID:        k.KID,
		Algorithm:  k.suite.algorithm,
		NotBefore:  k.NotBefore.UTC(),
		NotAfter:   k.NotAfter,
		PrivateKey: priv,
	}, nil
}
