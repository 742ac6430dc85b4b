// Package keyset is the file the operator writes for a KeySet and authd
// reads (CONTRACT.md, Kubernetes resources): one JSON document, keys.json,
// in the KeySet's Secret, holding every key of the set with the window the
// operator gave it. authd mounts the Secret and activates keys by time: the
// key to sign, seal to or MAC with is the one whose not_before is the
// latest that has passed, so every replica switches at the same instant,
// whenever it reloaded the file.
//
// One file (not a file per key) because the kubelet replaces a Secret's
// files atomically only as a whole directory, while a reader walking a
// directory can see some files of the old version and some of the new; a
// single file is read in one go.
//
//	{
//	  "purpose": "token-signing",
//	  "publish_ahead": "24h0m0s",
//	  "protected_lifetime": "1h0m0s",
//	  "keys": [
//	    {"kid": "…", "algorithm": "ES256", "not_before": "…", "not_after": "…", "private_key": "…"}
//	  ]
//	}
//
// private_key is unpadded base64url of:
//   - ES256: the PKCS #8 DER of an ECDSA P-256 key;
//   - MLKEM768-X25519 and DHKEM-X25519: the HPKE KEM's serialized private
//     key (RFC 9180 §7.1.2; X-Wing's 32-byte seed, X25519's 32-byte scalar);
//   - HS256: 32 random bytes.
//
// kid is derived from the key (never chosen), so the operator and every
// replica compute the same one: the RFC 7638 thumbprint for ES256 (the
// JWKS kid), base64url(SHA-256(kem_id ‖ public key)[:16]) for sealing keys
// (the sealing-keys.json kid), and a labelled SHA-256 of the secret for
// HS256. Parse checks it, so a key file cannot name a key it does not hold.
package keyset

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Purposes of a KeySet (KeySet spec.purpose).
const (
	PurposeTokenSigning   = "token-signing"
	PurposePayloadSealing = "payload-sealing"
	PurposeHMACSecret     = "hmac-secret"
)

// Algorithms (KeySet spec.algorithm).
const (
	// ES256 is ECDSA P-256 with SHA-256 (RFC 7518 §3.4), for token-signing.
	ES256 = "ES256"
	// XWing is the HPKE KEM MLKEM768-X25519 (0x647a), for payload-sealing.
	XWing = "MLKEM768-X25519"
	// X25519 is the HPKE KEM DHKEM(X25519, HKDF-SHA256) (0x0020), for
	// payload-sealing to old clients.
	X25519 = "DHKEM-X25519"
	// HS256 is HMAC-SHA-256 with a 256-bit secret, for hmac-secret.
	HS256 = "HS256"
)

// HPKE KEM identifiers of the sealing algorithms (RFC 9180 §7.1, IANA).
const (
	KEMXWing  uint16 = 0x647a
	KEMX25519 uint16 = 0x0020
)

// FileName is the Secret data key (and so the mounted file) of keys.json.
const FileName = "keys.json"

// MaxFileSize bounds keys.json; a set of 50 X-Wing keys is about 10 KiB.
const MaxFileSize = 1 << 20

// MaxKeys bounds the keys of one set.
const MaxKeys = 256

// Algorithms returns the algorithms a purpose allows, default first.
func Algorithms(purpose string) []string {
	switch purpose {
	case PurposeTokenSigning:
		return []string{ES256}
	case PurposePayloadSealing:
		return []string{XWing, X25519}
	case PurposeHMACSecret:
		return []string{HS256}
	}
	return nil
}

// File is keys.json.
type File struct {
	Purpose string `json:"purpose"`
	// PublishAhead is how long before its not_before each key appears in
	// the file. Readers that cache what they publish (the JWKS, the
	// sealing keys) tell their clients to cache it for less than this.
	PublishAhead Duration `json:"publish_ahead"`
	// ProtectedLifetime is the longest lifetime of anything a key of the
	// set signs, seals or MACs, as the KeySet promises it: every key is
	// kept at least this long after it stops being active. authd refuses
	// a file promising less than its own configuration needs.
	ProtectedLifetime Duration `json:"protected_lifetime"`
	Keys              []Key    `json:"keys"`
}

// Key is one key of a set. Its private key is only in PrivateKey; String,
// GoString and Format keep it out of logs and errors.
type Key struct {
	KID       string    `json:"kid"`
	Algorithm string    `json:"algorithm"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// PrivateKey is the raw private key (see the package comment).
	PrivateKey Secret `json:"private_key"`
}

// Secret is private key bytes; it prints as "[redacted]" and marshals as
// unpadded base64url.
type Secret []byte

// String never shows the bytes.
func (Secret) String() string { return "[redacted]" }

// GoString never shows the bytes.
func (Secret) GoString() string { return "[redacted]" }

// Format never shows the bytes, whatever the verb.
func (Secret) Format(f fmt.State, _ rune) { fmt.Fprint(f, "[redacted]") }

// MarshalJSON writes unpadded base64url.
func (s Secret) MarshalJSON() ([]byte, error) {
	return json.Marshal(b64.EncodeToString(s))
}

// UnmarshalJSON reads unpadded base64url; errors never quote the input.
func (s *Secret) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return errors.New("private_key: want a string")
	}
	// The decoder skips line breaks; one spelling per key refuses them.
	raw, err := b64.DecodeString(str)
	if err != nil || strings.ContainsAny(str, "\r\n") {
		return errors.New("private_key: want unpadded base64url")
	}
	*s = raw
	return nil
}

// Duration is a time.Duration written as Go's duration string.
type Duration time.Duration

// MarshalJSON writes the duration as a string ("1h0m0s").
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("want a duration string")
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return errors.New("want a non-negative Go duration")
	}
	*d = Duration(v)
	return nil
}

// String names the key without its private half.
func (k Key) String() string {
	return fmt.Sprintf("key %s (%s, %s to %s)", k.KID, k.Algorithm,
		k.NotBefore.UTC().Format(time.RFC3339), k.NotAfter.UTC().Format(time.RFC3339))
}

// GoString is String, so %#v cannot print the private key either.
func (k Key) GoString() string { return k.String() }

var b64 = base64.RawURLEncoding.Strict()

// Generate makes a fresh private key of algorithm and returns it with its
// kid.
func Generate(algorithm string) (priv Secret, kid string, err error) {
	switch algorithm {
	case ES256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, "", fmt.Errorf("keyset: generate %s: %w", algorithm, err)
		}
		if priv, err = x509.MarshalPKCS8PrivateKey(k); err != nil {
			return nil, "", fmt.Errorf("keyset: generate %s: %w", algorithm, err)
		}
	case XWing, X25519:
		kem, _ := kemOf(algorithm)
		k, err := kem.GenerateKey()
		if err != nil {
			return nil, "", fmt.Errorf("keyset: generate %s: %w", algorithm, err)
		}
		if priv, err = k.Bytes(); err != nil {
			return nil, "", fmt.Errorf("keyset: generate %s: %w", algorithm, err)
		}
	case HS256:
		priv = make([]byte, 32)
		_, _ = rand.Read(priv) // never fails (crypto/rand)
	default:
		return nil, "", fmt.Errorf("keyset: unknown algorithm %q", algorithm)
	}
	kid, err = KID(algorithm, priv)
	if err != nil {
		return nil, "", err
	}
	return priv, kid, nil
}

// KID checks a private key of algorithm and derives its kid. Errors never
// contain key material.
func KID(algorithm string, priv []byte) (string, error) {
	switch algorithm {
	case ES256:
		s, err := ParseES256(priv)
		if err != nil {
			return "", err
		}
		tp, err := (&jose.JSONWebKey{Key: s.Public()}).Thumbprint(crypto.SHA256)
		if err != nil {
			return "", fmt.Errorf("keyset: ES256 thumbprint: %w", err)
		}
		return b64.EncodeToString(tp), nil
	case XWing, X25519:
		kem, id := kemOf(algorithm)
		k, err := kem.NewPrivateKey(priv)
		if err != nil {
			return "", fmt.Errorf("keyset: %s private key is invalid", algorithm)
		}
		return SealingKID(id, k.PublicKey().Bytes()), nil
	case HS256:
		if len(priv) != 32 {
			return "", fmt.Errorf("keyset: HS256 secret must be 32 bytes, got %d", len(priv))
		}
		h := sha256.New()
		h.Write([]byte("strongroom/hmac-secret/kid/v1\x00"))
		h.Write(priv)
		return b64.EncodeToString(h.Sum(nil)[:16]), nil
	}
	return "", fmt.Errorf("keyset: unknown algorithm %q", algorithm)
}

// ParseES256 parses an ES256 private key (PKCS #8 DER of ECDSA P-256).
func ParseES256(priv []byte) (*ecdsa.PrivateKey, error) {
	k, err := x509.ParsePKCS8PrivateKey(priv)
	if err != nil {
		// x509's errors describe the structure, never the key's bytes.
		return nil, fmt.Errorf("keyset: ES256 private key: %w", err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("keyset: ES256 private key is not ECDSA P-256")
	}
	return ec, nil
}

// SealingKID is the kid of a sealing public key: unpadded base64url of the
// first 16 bytes of SHA-256(kem_id (2 bytes, big endian) ‖ public key).
func SealingKID(kemID uint16, pub []byte) string {
	h := sha256.New()
	var id [2]byte
	binary.BigEndian.PutUint16(id[:], kemID)
	h.Write(id[:])
	h.Write(pub)
	return b64.EncodeToString(h.Sum(nil)[:16])
}

// KEMID returns the HPKE KEM id of a sealing algorithm (0 for others).
func KEMID(algorithm string) uint16 {
	_, id := kemOf(algorithm)
	return id
}

func kemOf(algorithm string) (hpke.KEM, uint16) {
	switch algorithm {
	case XWing:
		return hpke.MLKEM768X25519(), KEMXWing
	case X25519:
		return hpke.DHKEM(ecdh.X25519()), KEMX25519
	}
	return nil, 0
}

// Parse reads keys.json and checks it whole: known members only, a known
// purpose, algorithms of that purpose, non-empty windows, kids that match
// their keys, no kid twice. Errors never contain key material.
func Parse(data []byte) (*File, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("keyset: %s larger than %d bytes", FileName, MaxFileSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("keyset: %s: %w", FileName, scrub(err))
	}
	if dec.More() {
		return nil, fmt.Errorf("keyset: %s: data after the document", FileName)
	}
	if err := f.Check(); err != nil {
		return nil, err
	}
	return &f, nil
}

// scrub drops what a JSON error might quote of the input: decoding errors
// of json.Decoder name offsets and types, never values, except syntax
// errors, which are replaced.
func scrub(err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Errorf("not valid JSON (offset %d)", syn.Offset)
	}
	return err
}

// Check validates f as Parse does.
func (f *File) Check() error {
	algs := Algorithms(f.Purpose)
	if algs == nil {
		return fmt.Errorf("keyset: unknown purpose %q", f.Purpose)
	}
	if len(f.Keys) > MaxKeys {
		return fmt.Errorf("keyset: %d keys, at most %d", len(f.Keys), MaxKeys)
	}
	seen := make(map[string]bool, len(f.Keys))
	for i, k := range f.Keys {
		if !slices.Contains(algs, k.Algorithm) {
			return fmt.Errorf("keyset: key %d: algorithm %q is not one of %s's %v", i, k.Algorithm, f.Purpose, algs)
		}
		if k.NotBefore.IsZero() || k.NotAfter.IsZero() || !k.NotBefore.Before(k.NotAfter) {
			return fmt.Errorf("keyset: key %d: not_before must be before not_after", i)
		}
		kid, err := KID(k.Algorithm, k.PrivateKey)
		if err != nil {
			return fmt.Errorf("keyset: key %d: %w", i, err)
		}
		if kid != k.KID {
			return fmt.Errorf("keyset: key %d: kid does not match its key", i)
		}
		if seen[kid] {
			return fmt.Errorf("keyset: key %s appears twice", kid)
		}
		seen[kid] = true
	}
	return nil
}

// Marshal writes keys.json, keys sorted by not_before then kid, so the
// same set is always the same bytes.
func (f *File) Marshal() ([]byte, error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	out := *f
	out.Keys = slices.Clone(f.Keys)
	slices.SortFunc(out.Keys, byNotBefore)
	for i := range out.Keys {
		out.Keys[i].NotBefore = out.Keys[i].NotBefore.UTC()
		out.Keys[i].NotAfter = out.Keys[i].NotAfter.UTC()
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("keyset: marshal: %w", err)
	}
	return append(b, '\n'), nil
}

// byNotBefore orders keys by not_before, then kid: the order in which they
// become active (a tie goes to the greater kid).
func byNotBefore(a, b Key) int {
	if c := a.NotBefore.Compare(b.NotBefore); c != 0 {
		return c
	}
	return strings.Compare(a.KID, b.KID)
}

// Active returns the key to use at now: of the keys whose window holds now
// (not_before ≤ now < not_after), the one with the latest not_before (ties
// broken by kid, so every reader picks the same one). ok is false when no
// key is in its window.
func (f *File) Active(now time.Time) (k Key, ok bool) {
	for _, c := range f.Keys {
		if c.NotBefore.After(now) || !now.Before(c.NotAfter) {
			continue
		}
		if !ok || byNotBefore(c, k) > 0 {
			k, ok = c, true
		}
	}
	return k, ok
}

// Published returns the keys not yet retired at now (now < not_after):
// those ahead of their window, the active one and those kept to verify or
// open what was made with them. The active key comes first (most of what
// is checked was made with it), then the others from the latest
// not_before to the earliest.
func (f *File) Published(now time.Time) []Key {
	var out []Key
	for _, k := range f.Keys {
		if now.Before(k.NotAfter) {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b Key) int { return byNotBefore(b, a) })
	if act, ok := f.Active(now); ok {
		i := slices.IndexFunc(out, func(k Key) bool { return k.KID == act.KID })
		copy(out[1:i+1], out[:i])
		out[0] = act
	}
	return out
}
