// Package oauth is authd's OAuth2 server on ory/fosite: the JWT access
// token signer, the fosite storage backed by the event store, the clients,
// and the HTTP endpoints (token, revocation, introspection, discovery, JWKS).
package oauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/go-jose/go-jose/v4"
	fjwt "github.com/ory/fosite/token/jwt"

	"strongroom.dev/api/es256"
	"strongroom.dev/services/authd/internal/keys"
)

// AccessTokenType is the JWS "typ" of access tokens (RFC 9068 §2.1).
const AccessTokenType = "at+jwt"

// Signer implements fosite's jwt.Signer for RFC 9068 access tokens: it
// signs with the key source's active key (kid = RFC 7638 thumbprint) and
// verifies by kid against every published key. fosite's DefaultSigner can
// only verify with the current key (ory/fosite#786), which would break
// every token at each rotation.
type Signer struct {
	Keys keys.Source

	// prepared is what signing with the active key needs, built once per
	// key rather than once per token.
	prepared atomic.Pointer[preparedKey]
}

var _ fjwt.Signer = (*Signer)(nil)

// preparedKey is a signing key with its encoded protected header.
type preparedKey struct {
	key    *keys.Key
	header string // base64url of {"alg":"ES256","kid":...,"typ":"at+jwt"}
	signer jose.OpaqueSigner
}

// signingKey returns the active key, prepared. A rotation (another *Key
// from the source) prepares the new one.
func (s *Signer) signingKey() (*preparedKey, error) {
	k, err := s.Keys.Active()
	if err != nil {
		return nil, err
	}
	if p := s.prepared.Load(); p != nil && p.key == k {
		return p, nil
	}
	opaque, err := es256.Signer(k.Signer, k.KID)
	if err != nil {
		return nil, fmt.Errorf("access token signer: %w", err)
	}
	// The header go-jose would write: the members sorted, no whitespace.
	header, err := json.Marshal(map[string]string{"alg": string(jose.ES256), "kid": k.KID, "typ": AccessTokenType})
	if err != nil {
		return nil, fmt.Errorf("access token header: %w", err)
	}
	p := &preparedKey{key: k, header: base64.RawURLEncoding.EncodeToString(header), signer: opaque}
	s.prepared.Store(p)
	return p, nil
}

// Generate implements jwt.Signer: a compact JWS (RFC 7515 §7.1) of the
// claims, ES256 over the exact signing input, with the prepared header.
// It builds the JWS itself instead of through a go-jose signer, which
// would re-encode the same header and rebuild the signer for every token.
func (s *Signer) Generate(_ context.Context, claims fjwt.MapClaims, _ fjwt.Mapper) (string, string, error) {
	p, err := s.signingKey()
	if err != nil {
		return "", "", err
	}
	payload, err := json.Marshal(map[string]any(claims))
	if err != nil {
		return "", "", fmt.Errorf("encode access token claims: %w", err)
	}
	enc := base64.RawURLEncoding
	input := make([]byte, 0, len(p.header)+1+enc.EncodedLen(len(payload))+1+enc.EncodedLen(64))
	input = append(input, p.header...)
	input = append(input, '.')
	input = enc.AppendEncode(input, payload)
	sig, err := p.signer.SignPayload(input, jose.ES256)
	if err != nil {
		return "", "", fmt.Errorf("sign access token: %w", err)
	}
	token := string(enc.AppendEncode(append(input, '.'), sig))
	return token, token[strings.LastIndexByte(token, '.')+1:], nil
}

// Decode implements jwt.Signer: it verifies the signature with the
// published key named by kid, refusing any algorithm but ES256 and any
// "typ" but at+jwt, then validates the time claims.
func (s *Signer) Decode(_ context.Context, token string) (*fjwt.Token, error) {
	return fjwt.ParseWithClaims(token, fjwt.MapClaims{}, func(t *fjwt.Token) (any, error) {
		if string(t.Method) != string(jose.ES256) {
			return nil, &fjwt.ValidationError{Errors: fjwt.ValidationErrorUnverifiable}
		}
		if typ, _ := t.Header["typ"].(string); typ != AccessTokenType {
			return nil, &fjwt.ValidationError{Errors: fjwt.ValidationErrorMalformed}
		}
		kid, _ := t.Header["kid"].(string)
		k, ok := s.Keys.Lookup(kid)
		if !ok {
			return nil, &fjwt.ValidationError{Errors: fjwt.ValidationErrorUnverifiable}
		}
		return k.Public, nil
	})
}

// Validate implements jwt.Signer.
func (s *Signer) Validate(ctx context.Context, token string) (string, error) {
	if _, err := s.Decode(ctx, token); err != nil {
		return "", err
	}
	return s.GetSignature(ctx, token)
}

// GetSignature implements jwt.Signer.
func (s *Signer) GetSignature(_ context.Context, token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("token is not a compact JWS")
	}
	return parts[2], nil
}

// Hash implements jwt.Signer.
func (s *Signer) Hash(_ context.Context, in []byte) ([]byte, error) {
	sum := sha256.Sum256(in)
	return sum[:], nil
}

// GetSigningMethodLength implements jwt.Signer.
func (s *Signer) GetSigningMethodLength(context.Context) int { return sha256.Size }

// PublicKey returns an ECDSA public key for a kid, for verifiers outside fosite.
func (s *Signer) PublicKey(kid string) (*ecdsa.PublicKey, bool) {
	k, ok := s.Keys.Lookup(kid)
	if !ok {
		return nil, false
	}
	return k.Public, true
}
