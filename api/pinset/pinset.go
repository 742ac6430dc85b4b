// Package pinset builds, signs and verifies the pin set the operator
// publishes for apps (CONTRACT.md, Pinning): a compact JWS (ES256, kid
// naming the pin-manifest key) over {version, issued_at, expires_at,
// pins}, and its Android Network Security Config rendering. The manifest
// key is used only through crypto.Signer, so a KMS or HSM can hold it.
// Verify is what an app does with the manifest keys it ships.
package pinset

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"strongroom.dev/api/es256"
)

// Pin is one published pin.
type Pin struct {
	// SHA256 is base64(SHA-256(SubjectPublicKeyInfo)).
	SHA256 string `json:"sha256"`
	// Role is current, next, backup or retired.
	Role      string    `json:"role"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
}

// Set is the signed payload.
type Set struct {
	Version   int64     `json:"version"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Pins      []Pin     `json:"pins"`
}

// PinOf returns the pin of a public key: base64(SHA-256 of its DER
// SubjectPublicKeyInfo), the format of Android's <pin> and of curl's
// --pinnedpubkey sha256//. It names the key, not a certificate, so it
// survives re-issuing with the same key.
func PinOf(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("pin: %w", err)
	}
	return pinOfSPKI(der), nil
}

// CertPin returns the pin of a certificate's key.
func CertPin(cert *x509.Certificate) string { return pinOfSPKI(cert.RawSubjectPublicKeyInfo) }

func pinOfSPKI(der []byte) string {
	sum := sha256.Sum256(der)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// Sign returns the compact JWS of s, signed with key (ES256, P-256) under
// kid.
func Sign(s Set, key crypto.Signer, kid string) (string, error) {
	if s.Version < 1 || len(s.Pins) == 0 || kid == "" {
		return "", errors.New("pin set: a positive version, pins and a kid are required")
	}
	opaque, err := es256.Signer(key, kid)
	if err != nil {
		return "", fmt.Errorf("pin set: the manifest key: %w", err)
	}
	payload, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("pin set: %w", err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: opaque},
		(&jose.SignerOptions{}).WithHeader(jose.HeaderKey("kid"), kid))
	if err != nil {
		return "", fmt.Errorf("pin set: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("pin set: sign: %w", err)
	}
	return jws.CompactSerialize()
}

// Errors of Verify.
var (
	ErrInvalid  = errors.New("pin set: invalid")
	ErrRollback = errors.New("pin set: older than the one held")
	ErrExpired  = errors.New("pin set: expired")
)

// Verify checks a pin set the way an app does: signed ES256 by one of the
// manifest keys (by kid), not expired at now, and not older than the
// version the app already holds.
func Verify(jws string, manifest map[string]*ecdsa.PublicKey, held int64, now time.Time) (*Set, error) {
	if len(jws) > 64<<10 {
		return nil, fmt.Errorf("%w: larger than 64 KiB", ErrInvalid)
	}
	parsed, err := jose.ParseSignedCompact(strings.TrimSpace(jws), []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || len(parsed.Signatures) != 1 {
		return nil, fmt.Errorf("%w: not a compact ES256 JWS", ErrInvalid)
	}
	key, ok := manifest[parsed.Signatures[0].Header.KeyID]
	if !ok {
		return nil, fmt.Errorf("%w: unknown manifest key", ErrInvalid)
	}
	payload, err := parsed.Verify(key)
	if err != nil {
		return nil, fmt.Errorf("%w: signature", ErrInvalid)
	}
	var s Set
	if err := json.Unmarshal(payload, &s); err != nil || s.Version < 1 || len(s.Pins) == 0 {
		return nil, fmt.Errorf("%w: payload", ErrInvalid)
	}
	if s.Version < held {
		return nil, ErrRollback
	}
	if !now.Before(s.ExpiresAt) {
		return nil, ErrExpired
	}
	return &s, nil
}

// Android renders s as an Android Network Security Config <pin-set>
// (expiration is the pin set's expiry date, after which Android stops
// enforcing the pins rather than locking users out).
func Android(s Set) ([]byte, error) {
	type pin struct {
		Digest string `xml:"digest,attr"`
		Value  string `xml:",chardata"`
	}
	doc := struct {
		XMLName    xml.Name `xml:"pin-set"`
		Expiration string   `xml:"expiration,attr"`
		Pins       []pin    `xml:"pin"`
	}{Expiration: s.ExpiresAt.UTC().Format(time.DateOnly)}
	for _, p := range s.Pins {
		doc.Pins = append(doc.Pins, pin{Digest: "SHA-256", Value: p.SHA256})
	}
	out, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}
