package assertion

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/json"
	"errors"

	jose "github.com/go-jose/go-jose/v4"

	"strongroom.dev/services/dpop"
)

// ErrKey is wrapped by every refusal of a biometric public key.
var ErrKey = errors.New("invalid biometric key")

// Key is a biometric public key as the app registers it.
type Key struct {
	Public *ecdsa.PublicKey
	// JKT is its RFC 7638 thumbprint.
	JKT string
	// JWK is its canonical public JWK {kty, crv, x, y}, as recorded.
	JWK map[string]any
}

// ParseKey reads a biometric public key: an EC P-256 public JWK (RFC
// 7517). A private key (one with "d"), another curve or type, and members
// of the wrong type are refused.
func ParseKey(raw []byte) (*Key, error) {
	if len(raw) == 0 || len(raw) > 4<<10 {
		return nil, ErrKey
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(raw, &probe) != nil {
		return nil, ErrKey
	}
	if _, ok := probe["d"]; ok {
		return nil, errors.Join(ErrKey, errors.New("a private key was sent: send the public half only"))
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil || !k.IsPublic() {
		return nil, ErrKey
	}
	pub, ok := k.Key.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, errors.Join(ErrKey, errors.New("want an EC P-256 key"))
	}
	return newKey(pub)
}

// KeyFromJWK rebuilds a recorded key.
func KeyFromJWK(jwk map[string]any) (*Key, error) {
	raw, err := json.Marshal(jwk)
	if err != nil {
		return nil, ErrKey
	}
	return ParseKey(raw)
}

func newKey(pub *ecdsa.PublicKey) (*Key, error) {
	raw, err := jose.JSONWebKey{Key: pub}.MarshalJSON()
	if err != nil {
		return nil, ErrKey
	}
	var jwk map[string]any
	if err := json.Unmarshal(raw, &jwk); err != nil {
		return nil, ErrKey
	}
	return &Key{Public: pub, JKT: dpop.Thumbprint(pub), JWK: jwk}, nil
}
