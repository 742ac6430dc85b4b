// Package dpop verifies and creates DPoP proofs (RFC 9449, "OAuth 2.0
// Demonstrating Proof of Possession").
//
// A DPoP proof is a JWT the client signs with a key it keeps (on Strongroom's
// mobile app: the device key in the platform keystore). The server checks
// that the proof is fresh, made for this very request (method and URL) and,
// when an access token is presented, made for that token. Binding tokens to
// the key this way means a stolen token is useless without the device.
//
// The package is deliberately strict — stricter than RFC 9449 requires where
// the RFC leaves room for ambiguity — because every relaxation is a way for a
// hostile client to make two parsers disagree:
//
//   - only the compact serialization with one signature (RFC 9449 §4.2);
//   - only ES256 with the key in the "jwk" header, nothing that could point
//     a verifier to another key ("kid", "jku", "x5c", "x5u", ...);
//   - canonical base64url (no padding, no whitespace, no stray bits) and JSON
//     objects without duplicate member names.
//
// Replay protection (the "jti never seen before" rule of RFC 9449 §11.1) needs
// shared state and is left to the caller: [Proof.JTI], [Proof.JKT] and
// [Proof.IssuedAt] give it everything it needs.
package dpop

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"
)

// MaxProofSize is the largest proof Verify looks at, in bytes. A real ES256
// proof is well under 1 KiB; refusing larger input before any decoding keeps
// the cost of hostile input bounded.
const MaxProofSize = 8 << 10

const (
	// DefaultLeeway is the iat window used when Options.Leeway is zero: the
	// contract's "iat within ±60 s" (RFC 9449 §11.1 leaves it to the server).
	DefaultLeeway = 60 * time.Second
	// DefaultMaxJTILength bounds jti when Options.MaxJTILength is zero, so a
	// replay cache keyed by jti cannot be made to store huge keys.
	DefaultMaxJTILength = 128
)

// typDPoP is the only accepted "typ" (RFC 9449 §4.2, §4.3 check 4). It is
// compared exactly: it exists to keep other JWTs (ID tokens, access tokens,
// assertions) from being replayed as proofs, so no variant is accepted.
const typDPoP = "dpop+jwt"

// algES256 is the only accepted "alg" (see checkHeader).
const algES256 = "ES256"

var (
	// ErrInvalidProof is wrapped by every error about a malformed or invalid
	// proof. Its text is the RFC 9449 §7.1 error code, so it can be sent to
	// the client as is.
	ErrInvalidProof = errors.New("invalid_dpop_proof")
	// ErrUseNonce is wrapped when Options.Nonce refuses the proof's nonce (or
	// its absence): the server should answer use_dpop_nonce with a fresh
	// DPoP-Nonce header (RFC 9449 §8, §9).
	ErrUseNonce = errors.New("use_dpop_nonce")
)

// Proof is a verified DPoP proof.
type Proof struct {
	JKT      string           // RFC 7638 SHA-256 thumbprint of the proof's public key, unpadded base64url
	Key      *ecdsa.PublicKey // the proof's public key (header "jwk")
	JTI      string           // jti: the caller's replay cache key, together with JKT
	IssuedAt time.Time        // iat
	Nonce    string           // "" when absent
	Method   string           // htm
	URL      string           // htu, as sent by the client
}

// Options says what a proof must be made for.
type Options struct {
	// Method is the expected htm, compared exactly (HTTP methods are case
	// sensitive, RFC 9110 §9.1).
	Method string
	// URL is the expected htu: the request URL as the client sees it,
	// scheme://host[:port]/path. A query or fragment in URL is ignored (RFC
	// 9449 §4.3 check 9 compares without them). Both URL and the claim go
	// through RFC 3986 §6.2.2/§6.2.3 normalization before comparing: case of
	// scheme and host, default port, percent-encoding, dot segments.
	URL string
	// Now is the verification time; zero means time.Now().
	Now time.Time
	// Leeway is the accepted distance of iat from Now, both ways; zero means
	// DefaultLeeway.
	Leeway time.Duration
	// AccessToken, when set, is the token presented with the proof: the proof
	// must then carry ath = base64url(SHA-256(token)) (RFC 9449 §4.3 check
	// 12). When empty, a proof that carries ath is refused: ath binds a proof
	// to a token, and a proof made for a token has no business anywhere else.
	AccessToken string
	// Nonce, when set, is called with the proof's nonce claim ("" when
	// absent) once everything else has been verified. An error from it makes
	// Verify return an error that matches ErrUseNonce (and the returned
	// error, via errors.Is/As) but whose text never includes the nonce.
	Nonce func(nonce string) error
	// MaxJTILength bounds the jti length in bytes; zero means
	// DefaultMaxJTILength.
	MaxJTILength int
}

// ErrBadOptions is wrapped when Options cannot be used (no Method, an URL
// that is not an absolute http(s) URL). It does not match ErrInvalidProof: it
// is a bug or a misconfiguration on the server side, not the client's fault.
var ErrBadOptions = errors.New("dpop: bad options")

// invalid builds an ErrInvalidProof error. Reasons are fixed strings chosen
// here: nothing from the proof, the token or the nonce ever goes into an
// error, so errors are safe to log and to return to the client.
func invalid(reason string) error {
	return fmt.Errorf("%w: %s", ErrInvalidProof, reason)
}

// nonceError is returned when Options.Nonce refuses a proof. It matches both
// ErrUseNonce and the callback's error, but prints only a fixed text, since
// the callback's message might include the nonce.
type nonceError struct {
	missing bool
	cause   error
}

func (e *nonceError) Error() string {
	if e.missing {
		return "use_dpop_nonce: the proof has no nonce and the server requires one"
	}
	return "use_dpop_nonce: the proof's nonce is not acceptable"
}

func (e *nonceError) Unwrap() []error { return []error{ErrUseNonce, e.cause} }

var b64 = base64.RawURLEncoding.Strict()

// Verify checks a DPoP proof (the value of the DPoP request header) against
// the request it came with, following RFC 9449 §4.3. It does not check jti
// for replay; see the package documentation.
//
// Errors wrap ErrInvalidProof (a malformed or invalid proof), ErrUseNonce
// (Options.Nonce refused the nonce) or ErrBadOptions.
func Verify(proof string, o Options) (*Proof, error) {
	if o.Method == "" {
		return nil, fmt.Errorf("%w: Method is empty", ErrBadOptions)
	}
	wantURL, err := normalizeHTU(o.URL, true)
	if err != nil {
		return nil, fmt.Errorf("%w: URL: %w", ErrBadOptions, err)
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	leeway := o.Leeway
	if leeway <= 0 {
		leeway = DefaultLeeway
	}
	maxJTI := o.MaxJTILength
	if maxJTI <= 0 {
		maxJTI = DefaultMaxJTILength
	}

	// Size first: nothing below runs on arbitrarily large input.
	if proof == "" {
		return nil, invalid("no proof")
	}
	if len(proof) > MaxProofSize {
		return nil, invalid("proof larger than 8 KiB")
	}

	// RFC 9449 §4.3 checks 2-3: a well-formed JWT, i.e. a compact JWS
	// (RFC 7515 §7.1). The JSON serializations can carry several signatures
	// and unprotected headers, neither of which has a meaning for DPoP.
	parts := strings.Split(proof, ".")
	if len(parts) != 3 {
		return nil, invalid("not a compact JWS (need exactly three dot-separated parts)")
	}
	headerJSON, err := decodeSegment(parts[0])
	if err != nil {
		return nil, invalid("header is not canonical unpadded base64url")
	}
	payload, err := decodeSegment(parts[1])
	if err != nil {
		return nil, invalid("payload is not canonical unpadded base64url")
	}
	sig, err := decodeSegment(parts[2])
	if err != nil {
		return nil, invalid("signature is not canonical unpadded base64url")
	}

	header, err := parseObject(headerJSON)
	if err != nil {
		return nil, invalid("header is not a JSON object: " + err.Error())
	}
	key, err := checkHeader(header)
	if err != nil {
		return nil, err
	}
	if len(sig) != 64 {
		// RFC 7518 §3.4: an ES256 signature is R||S, 32 bytes each.
		return nil, invalid("signature is not 64 bytes (ES256)")
	}

	// RFC 9449 §4.3 checks 5-7: the signature by the header's jwk, with the
	// one algorithm checkHeader allows. The header is parsed once, by the
	// strict parser above, so no second JOSE parser can read it differently
	// (the tests hold go-jose as an oracle that must accept every proof
	// this accepts).
	if !verifyES256(key, proof[:len(parts[0])+1+len(parts[1])], sig) {
		return nil, invalid("signature does not verify with the header jwk")
	}

	claims, err := parseObject(payload)
	if err != nil {
		return nil, invalid("claims are not a JSON object: " + err.Error())
	}
	p := &Proof{Key: key, JKT: Thumbprint(key)}

	// RFC 9449 §4.2: jti, a unique identifier, here bounded so that replay
	// caches keyed by it stay small.
	if p.JTI, err = stringClaim(claims, "jti", true); err != nil {
		return nil, err
	}
	if p.JTI == "" {
		return nil, invalid("jti is empty")
	}
	if len(p.JTI) > maxJTI {
		return nil, invalid("jti is too long")
	}

	// RFC 9449 §4.3 check 8: htm matches the request method.
	if p.Method, err = stringClaim(claims, "htm", true); err != nil {
		return nil, err
	}
	if p.Method != o.Method {
		return nil, invalid("htm does not match the request method")
	}

	// RFC 9449 §4.3 check 9: htu matches the request URL. The contract says
	// htu carries no query or fragment (RFC 9449 §4.2), so a claim with
	// either is refused rather than trimmed.
	if p.URL, err = stringClaim(claims, "htu", true); err != nil {
		return nil, err
	}
	gotURL, err := normalizeHTU(p.URL, false)
	if err != nil {
		return nil, invalid("htu is not a valid URL: " + err.Error())
	}
	if gotURL != wantURL {
		return nil, invalid("htu does not match the request URL")
	}

	// RFC 9449 §4.3 check 11: iat within an acceptable window.
	if p.IssuedAt, err = timeClaim(claims, "iat"); err != nil {
		return nil, err
	}
	if d := p.IssuedAt.Sub(now); d > leeway {
		return nil, invalid("iat is in the future")
	} else if d < -leeway {
		return nil, invalid("iat is too old")
	}

	// RFC 9449 §4.3 check 12: ath when a token comes with the proof.
	ath, err := stringClaim(claims, "ath", false)
	if err != nil {
		return nil, err
	}
	_, hasATH := claims["ath"]
	switch {
	case o.AccessToken != "" && !hasATH:
		return nil, invalid("ath is missing but an access token was presented")
	case o.AccessToken != "" && subtle.ConstantTimeCompare([]byte(ath), []byte(AccessTokenHash(o.AccessToken))) != 1:
		return nil, invalid("ath does not match the access token")
	case o.AccessToken == "" && hasATH:
		return nil, invalid("ath is present but no access token was presented")
	}

	// RFC 9449 §4.3 check 10 and §8: the nonce, last, so that use_dpop_nonce
	// is only ever the answer to an otherwise valid proof.
	if p.Nonce, err = stringClaim(claims, "nonce", false); err != nil {
		return nil, err
	}
	if o.Nonce != nil {
		if err := o.Nonce(p.Nonce); err != nil {
			return nil, &nonceError{missing: p.Nonce == "", cause: err}
		}
	}
	return p, nil
}

// verifyES256 checks an ES256 JWS signature (RFC 7518 §3.4): sig is R||S,
// 32 bytes each, over SHA-256 of the signing input (the header and payload
// segments exactly as sent). crypto/ecdsa refuses R or S outside [1, n-1].
func verifyES256(key *ecdsa.PublicKey, signingInput string, sig []byte) bool {
	if len(sig) != 64 {
		return false
	}
	digest := sha256.Sum256([]byte(signingInput))
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	return ecdsa.Verify(key, digest[:], r, s)
}

// checkHeader applies the JOSE header rules (RFC 9449 §4.2, §4.3 checks 4-7)
// and returns the proof key.
func checkHeader(h map[string]json.RawMessage) (*ecdsa.PublicKey, error) {
	// Parameters that could make a verifier look for the key somewhere else
	// than "jwk", change how the signature is computed, or that a verifier
	// must understand. RFC 9449 requires jwk; anything else that names a key
	// is at best redundant, at worst a way to confuse a library that prefers
	// kid or x5c over jwk, so it is refused rather than ignored.
	for _, name := range []string{"crit", "b64", "zip", "kid", "jku", "x5u", "x5c", "x5t", "x5t#S256", "enc"} {
		if _, ok := h[name]; ok {
			return nil, invalid("header parameter " + name + " is not allowed")
		}
	}
	var typ, alg string
	if raw, ok := h["typ"]; !ok || json.Unmarshal(raw, &typ) != nil || typ != typDPoP {
		return nil, invalid("typ must be dpop+jwt")
	}
	// RFC 9449 §4.3 check 5: never "none", never a MAC; here only ES256,
	// the one algorithm the contract allows (and that the discovery document
	// lists in dpop_signing_alg_values_supported).
	if raw, ok := h["alg"]; !ok || json.Unmarshal(raw, &alg) != nil || alg != algES256 {
		return nil, invalid("alg must be ES256")
	}
	raw, ok := h["jwk"]
	if !ok {
		return nil, invalid("jwk header is missing")
	}
	key, err := parsePublicJWK(raw)
	if err != nil {
		return nil, invalid("jwk: " + err.Error())
	}
	return key, nil
}

// stringClaim returns a claim that must be a JSON string when present.
func stringClaim(claims map[string]json.RawMessage, name string, required bool) (string, error) {
	raw, ok := claims[name]
	if !ok {
		if required {
			return "", invalid(name + " is missing")
		}
		return "", nil
	}
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", invalid(name + " is not a string")
	}
	return s, nil
}

// maxUnixSeconds bounds numeric dates to the year ~36812, far beyond any
// window; it only keeps the float-to-time conversion away from overflow.
const maxUnixSeconds = 1 << 40

// timeClaim reads a required NumericDate (RFC 7519 §2: seconds since the
// epoch, integer or not).
func timeClaim(claims map[string]json.RawMessage, name string) (time.Time, error) {
	raw, ok := claims[name]
	if !ok {
		return time.Time{}, invalid(name + " is missing")
	}
	// A JSON number, not a string holding one: json.Unmarshal into a float64
	// refuses strings, objects, booleans and null.
	var f float64
	if len(raw) == 0 || !(raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9')) || json.Unmarshal(raw, &f) != nil {
		return time.Time{}, invalid(name + " is not a number")
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > maxUnixSeconds {
		return time.Time{}, invalid(name + " is out of range")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

// decodeSegment decodes one part of a compact JWS. Only the base64url
// alphabet is accepted (Go's decoders silently skip CR and LF) and the strict
// decoder refuses padding and non-zero trailing bits, so each proof has
// exactly one textual form.
func decodeSegment(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("empty segment")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(('A' <= c && c <= 'Z') || ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') || c == '-' || c == '_') {
			return nil, errors.New("not base64url")
		}
	}
	return b64.DecodeString(s)
}

// AccessTokenHash returns the ath value for a token: the unpadded base64url
// SHA-256 of its ASCII bytes (RFC 9449 §4.2).
func AccessTokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
