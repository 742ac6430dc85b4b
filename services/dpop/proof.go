package dpop

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// jtiBytes is the entropy of a generated jti: 128 bits makes a collision
// between honest proofs (which a replay cache would refuse) negligible.
const jtiBytes = 16

// NewProof makes a DPoP proof (RFC 9449 §4.2) for a request: the client side,
// used by tests and by the reference mobile client.
//
// The header is typ dpop+jwt, alg ES256 and jwk = the public half of key;
// the claims are a random jti, htm = method, htu = url without its query and
// fragment (RFC 9449 §4.2 says htu has neither), iat = now in whole seconds,
// and nonce and ath (the hash of accessToken) when they are not empty.
func NewProof(key *ecdsa.PrivateKey, method, url, nonce, accessToken string, now time.Time) (string, error) {
	if key == nil || key.Curve != elliptic.P256() {
		return "", errors.New("dpop: NewProof needs an ECDSA P-256 key")
	}
	if method == "" || url == "" {
		return "", errors.New("dpop: NewProof needs a method and a URL")
	}
	if i := strings.IndexAny(url, "?#"); i >= 0 {
		url = url[:i]
	}
	jti := make([]byte, jtiBytes)
	if _, err := rand.Read(jti); err != nil {
		return "", fmt.Errorf("dpop: jti: %w", err)
	}
	claims := struct {
		JTI   string `json:"jti"`
		HTM   string `json:"htm"`
		HTU   string `json:"htu"`
		IAT   int64  `json:"iat"`
		Nonce string `json:"nonce,omitempty"`
		ATH   string `json:"ath,omitempty"`
	}{
		JTI:   base64.RawURLEncoding.EncodeToString(jti),
		HTM:   method,
		HTU:   url,
		IAT:   now.Unix(),
		Nonce: nonce,
	}
	if accessToken != "" {
		claims.ATH = AccessTokenHash(accessToken)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("dpop: claims: %w", err)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{EmbedJWK: true}).WithType(typDPoP),
	)
	if err != nil {
		return "", fmt.Errorf("dpop: signer: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("dpop: sign: %w", err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("dpop: serialize: %w", err)
	}
	return out, nil
}
