// Package assertion verifies the biometric assertion of the
// biometric-signature grant (CONTRACT.md, Token endpoint): a compact JWS
// with typ strongroom-biometric+jwt, ES256, signed by the device's
// biometric key, over {iss, aud, nonce, iat, jti} and, optionally,
// RFC 9396 authorization_details. It is pure: keys and the clock come in
// as arguments.
package assertion

import (
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"strongroom.dev/api/authzdetails"
)

// Type is the JWS typ header of a biometric assertion.
const Type = "strongroom-biometric+jwt"

// MaxLength bounds a compact assertion: claims, details and signature fit
// well inside it, and a hostile one is refused before any parsing.
const MaxLength = 8 << 10

// Leeway is how far iat may be from the server's clock either way: the
// challenge lives a minute, so an assertion older than that is stale.
const Leeway = 60 * time.Second

// Errors. Every refusal wraps ErrInvalid; a refusal of the details also
// wraps ErrDetails, so the grant can answer invalid_authorization_details
// (RFC 9396 §5).
var (
	ErrInvalid = errors.New("invalid assertion")
	ErrDetails = errors.New("invalid authorization_details")
)

func invalid(reason string) error { return fmt.Errorf("%w: %s", ErrInvalid, reason) }

// Assertion is a parsed assertion whose signature is not yet verified.
type Assertion struct {
	jws *jose.JSONWebSignature
	// Nonce is the challenge the assertion answers (its unverified claim:
	// it only selects the challenge; Verify checks it is signed).
	Nonce string
}

// Claims are what a verified assertion says.
type Claims struct {
	Issuer   string
	Nonce    string
	JTI      string
	IssuedAt time.Time
	// Details are the authorization details the user confirmed; nil when
	// the assertion carries none (a plain sign-in).
	Details *authzdetails.Details
}

// Parse reads a compact assertion: its header must be typ Type and alg
// ES256 (alg none, HMAC and every other algorithm are refused before
// anything else happens), with no header that would name a key.
func Parse(compact string) (*Assertion, error) {
	if compact == "" {
		return nil, invalid("no assertion")
	}
	if len(compact) > MaxLength {
		return nil, invalid("too long")
	}
	if strings.Count(compact, ".") != 2 {
		return nil, invalid("not a compact JWS")
	}
	jws, err := jose.ParseSignedCompact(compact, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, invalid("not an ES256 compact JWS")
	}
	if len(jws.Signatures) != 1 {
		return nil, invalid("not one signature")
	}
	if typ, _ := jws.Signatures[0].Protected.ExtraHeaders[jose.HeaderType].(string); typ != Type {
		return nil, invalid("typ must be " + Type)
	}
	// Only alg, typ and kid: the key is the one the device registered,
	// never one the header carries or points to (jwk, jku, x5c, x5u), and
	// no extension changes how the signature is read (crit, b64).
	rawHeader, err := base64.RawURLEncoding.DecodeString(compact[:strings.IndexByte(compact, '.')])
	var header map[string]json.RawMessage
	if err != nil || json.Unmarshal(rawHeader, &header) != nil {
		return nil, invalid("the header is not a JSON object")
	}
	for name := range header {
		if name != "alg" && name != "typ" && name != "kid" {
			return nil, invalid("the header may hold only alg, typ and kid")
		}
	}
	// The same reading Verify gives the claim: exactly "nonce".
	var peek map[string]json.RawMessage
	var nonce string
	if json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &peek) == nil {
		_ = json.Unmarshal(peek["nonce"], &nonce)
	}
	return &Assertion{jws: jws, Nonce: nonce}, nil
}

// Expect is what a verified assertion must say.
type Expect struct {
	// Issuer is the device id (iss), Audience the server's issuer (aud).
	Issuer, Audience string
	Now              time.Time
}

// Verify checks the signature with the biometric key, then the claims:
// iss, aud (the issuer, alone), nonce and jti present, iat within Leeway of
// now, exp (when present) not passed, and the authorization details.
func (a *Assertion) Verify(key *ecdsa.PublicKey, e Expect) (*Claims, error) {
	if key == nil {
		return nil, invalid("no biometric key")
	}
	payload, err := a.jws.Verify(key)
	if err != nil {
		return nil, invalid("the signature does not verify with the biometric key")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil || raw == nil { // Unmarshal refuses trailing data
		return nil, invalid("the claims are not a JSON object")
	}
	c := &Claims{}
	if c.Issuer, err = stringClaim(raw, "iss"); err != nil {
		return nil, err
	}
	if c.Issuer != e.Issuer {
		return nil, invalid("iss must be the device id")
	}
	if err := audience(raw, e.Audience); err != nil {
		return nil, err
	}
	if c.Nonce, err = stringClaim(raw, "nonce"); err != nil {
		return nil, err
	}
	if c.JTI, err = stringClaim(raw, "jti"); err != nil {
		return nil, err
	}
	if len(c.JTI) > 256 {
		return nil, invalid("jti is too long")
	}
	iat, ok, err := numericDate(raw, "iat")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, invalid("iat is required")
	}
	if iat.Before(e.Now.Add(-Leeway)) || iat.After(e.Now.Add(Leeway)) {
		return nil, invalid("iat is not within a minute of the server's clock")
	}
	c.IssuedAt = iat
	if exp, ok, err := numericDate(raw, "exp"); err != nil {
		return nil, err
	} else if ok && !e.Now.Before(exp) {
		return nil, invalid("the assertion has expired")
	}
	if d, ok := raw["authorization_details"]; ok {
		details, err := authzdetails.Parse(d)
		if err != nil {
			return nil, fmt.Errorf("%w: %w: %v", ErrInvalid, ErrDetails, err)
		}
		c.Details = details
	}
	return c, nil
}

func stringClaim(raw map[string]json.RawMessage, name string) (string, error) {
	v, ok := raw[name]
	if !ok {
		return "", invalid(name + " is required")
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil || s == "" {
		return "", invalid(name + " must be a non-empty string")
	}
	return s, nil
}

// audience accepts aud as the issuer itself or an array holding only it: a
// token meant for several audiences is not an answer to this server.
func audience(raw map[string]json.RawMessage, want string) error {
	v, ok := raw["aud"]
	if !ok {
		return invalid("aud is required")
	}
	var one string
	if json.Unmarshal(v, &one) == nil {
		if one != want {
			return invalid("aud must be the issuer")
		}
		return nil
	}
	var many []string
	if json.Unmarshal(v, &many) != nil || len(many) != 1 || many[0] != want {
		return invalid("aud must be the issuer")
	}
	return nil
}

func numericDate(raw map[string]json.RawMessage, name string) (time.Time, bool, error) {
	v, ok := raw[name]
	if !ok {
		return time.Time{}, false, nil
	}
	var f float64
	if err := json.Unmarshal(v, &f); err != nil || f < 0 || f > 1e11 {
		return time.Time{}, false, invalid(name + " must be a NumericDate")
	}
	return time.Unix(int64(f), 0), true, nil
}
