// Package rsverify is what a bank's resource server (an API called by the
// Strongroom mobile app) uses to accept a request: it verifies the
// DPoP-bound access token (RFC 9068 JWT, RFC 9449 binding) and the DPoP proof
// that comes with it.
//
// A request is accepted only when all of these hold:
//
//   - Authorization: DPoP <token> — a DPoP-bound token sent with the Bearer
//     scheme is refused (RFC 9449 §7.2), so a token cannot be downgraded to a
//     bearer token by a proxy or a careless client;
//   - the token is an ES256 JWT with typ at+jwt (RFC 9068 §2.1, §4), signed
//     by a key of the issuer's JWKS named by kid, with the expected iss and
//     aud and a valid lifetime (RFC 9068 §4);
//   - exactly one DPoP header holds a valid proof for this method and URL,
//     carrying ath of this token (RFC 9449 §4.3, §7.1);
//   - the proof's key is the one the token is bound to: cnf.jkt (RFC 9449
//     §6.1);
//   - the proof's jti has not been seen before for that key (RFC 9449 §11.1).
//
// Keys come from the issuer's JWKS, found through its RFC 8414 metadata,
// cached as long as Cache-Control allows, and refetched (at most once per
// Config.MinRefresh) when a token names an unknown kid, so signing-key
// rotation needs no restart.
//
// [Verifier.Middleware] wires all of this into an http.Handler; see the
// example.
//
// # Payments: dynamic linking
//
// A token from a biometric sign-in in which the user confirmed a payment
// carries it in authorization_details (RFC 9396): the same JSON values the
// app showed in the biometric prompt and the biometric key signed. It comes
// without a refresh token: the confirmation ends when the token expires. An
// API that executes payments (PSD2 strong customer authentication with
// dynamic linking, RTS Art. 5) checks, after Verify or Middleware:
//
//   - [Token].ACR is "urn:strongroom:acr:biometric": a passcode token, or
//     any token without authorization_details, confirms no payment;
//   - [Token.Payments] returns without error (an error means details this
//     package does not know: refuse, never skip them) and exactly the
//     payment the request asks for: the same amount, currency, creditor
//     name and IBAN, and reference. Amount is a decimal string ("249.90");
//     compare it as the API formats its own amount, or as an exact decimal,
//     never as a float. Any difference means the user confirmed another
//     payment: refuse it (HTTP 403), do not execute the one in the request;
//   - the confirmation is used once: the token may be presented again with
//     a fresh proof until it expires, so record [Token].JTI with the executed
//     payment and refuse a second payment under the same jti.
//
// See ExampleToken_Payments.
package rsverify

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"strongroom.dev/api/authzdetails"
	"strongroom.dev/services/dpop"
)

var (
	// ErrInvalidToken is wrapped by every error about the access token
	// (missing, malformed, expired, wrong issuer or audience, bad signature,
	// not bound to the proof's key). Its text is the RFC 6750 §3.1 error code.
	ErrInvalidToken = errors.New("invalid_token")
	// ErrNoToken is returned when the request carries no access token at
	// all. It matches ErrInvalidToken; the middleware answers it without an
	// error code, as RFC 6750 §3.1 asks for requests without credentials.
	ErrNoToken = fmt.Errorf("%w: no access token", ErrInvalidToken)
	// ErrInvalidProof is wrapped by every error about the DPoP proof
	// (missing, several, invalid, not for this request or token, replayed).
	// It is dpop.ErrInvalidProof, so errors.Is works with either.
	ErrInvalidProof = dpop.ErrInvalidProof
)

// Defaults for the zero values of Config.
const (
	DefaultLeeway     = 60 * time.Second
	DefaultMinRefresh = 30 * time.Second
	// DefaultMaxAge is how long a JWKS response without Cache-Control
	// max-age is used before it is fetched again.
	DefaultMaxAge = 5 * time.Minute
	// DefaultHTTPTimeout bounds each metadata or JWKS request.
	DefaultHTTPTimeout = 10 * time.Second
)

// maxTokenSize bounds the access token read from Authorization before any
// decoding. Strongroom tokens are about 1 KiB; authorization_details make
// them larger, never this large.
const maxTokenSize = 16 << 10

// ReplayCache remembers DPoP proofs. Seen records (jkt, jti) until the given
// time and reports whether it was already recorded (and not yet expired).
// It must be atomic: two concurrent calls with the same pair must not both
// return false. An error makes the request fail closed (HTTP 503 from the
// middleware).
//
// The default is an in-memory cache (NewMemoryReplayCache). Behind a load
// balancer with several replicas, use a shared implementation (e.g. Redis
// SET NX PX, or an INSERT ... ON CONFLICT DO NOTHING in a database): with
// per-process caches a proof can be replayed once against every replica.
type ReplayCache interface {
	Seen(ctx context.Context, jkt, jti string, until time.Time) (replayed bool, err error)
}

// Config configures a Verifier. Issuer and Audience are required.
type Config struct {
	// Issuer is the expected iss, exactly (RFC 9068 §4). Unless JWKSURL is
	// set, the JWKS is discovered from the issuer's RFC 8414 metadata.
	Issuer string
	// JWKSURL, when set, skips discovery.
	JWKSURL string
	// Audience must be one of the token's aud values (RFC 9068 §4): it is
	// how a token minted for another API is kept out of this one.
	Audience string
	// HTTPClient fetches metadata and JWKS; default: a client with a 10 s
	// timeout.
	HTTPClient *http.Client
	// Leeway is the clock skew tolerated on exp, nbf, iat and the proof's
	// iat; default 60 s.
	Leeway time.Duration
	// Replay remembers proofs; default: NewMemoryReplayCache with
	// DefaultReplayCacheSize entries.
	Replay ReplayCache
	// Now is the clock; default time.Now.
	Now func() time.Time
	// ExternalURL returns the URL the client used for r, without query:
	// the htu the proof must carry. Default: "https://" + r.Host +
	// r.URL.EscapedPath(). Behind a proxy that rewrites Host or the path,
	// set it from trusted configuration, never from X-Forwarded-* headers a
	// client can set.
	ExternalURL func(r *http.Request) string
	// MinRefresh is the minimum interval between two JWKS fetches, whatever
	// triggers them (an unknown kid, an expired cache, a failed fetch):
	// without it, tokens with random kids would make every request a fetch.
	// Default 30 s.
	MinRefresh time.Duration
	// OnError, when set, is called by Middleware with every refused request
	// and the reason, for logs and metrics. The error never contains the
	// token or the proof.
	OnError func(r *http.Request, err error)
}

// Verifier verifies requests. It is safe for concurrent use.
type Verifier struct {
	issuer      string
	audience    string
	leeway      time.Duration
	replay      ReplayCache
	now         func() time.Time
	externalURL func(r *http.Request) string
	onError     func(r *http.Request, err error)
	keys        *keySet
}

// Token is a verified access token.
type Token struct {
	Subject, ClientID, SessionID, ACR, JKT, JTI string
	Scopes                                      []string // scope, split on spaces
	AMR                                         []string
	Audience                                    []string
	AuthTime, IssuedAt, ExpiresAt               time.Time // AuthTime is zero when absent
	// AuthorizationDetails is the raw RFC 9396 array (what the user
	// confirmed with a biometric sign-in), nil if absent. A token whose
	// authorization_details is not a JSON array is refused. Payments decodes
	// Strongroom's payment type; the raw form lets an API decode types it
	// knows into its own structs.
	AuthorizationDetails json.RawMessage
	// Claims holds all claims. Numbers are json.Number, so that integers
	// (amounts, dates) keep their exact value.
	Claims map[string]any
}

// HasScope reports whether the token was granted scope.
func (t *Token) HasScope(scope string) bool {
	for _, s := range t.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// Payments returns the payments the user confirmed, parsed and checked with
// authzdetails.Parse (the rules authd applied before issuing the token), in
// the order they were signed. It returns nil, nil when the token carries no
// authorization_details. An error wraps authzdetails.ErrInvalid: the token
// carries details of a type or shape this package does not know, and an API
// must refuse the payment rather than ignore them.
func (t *Token) Payments() ([]authzdetails.Payment, error) {
	if t.AuthorizationDetails == nil {
		return nil, nil
	}
	d, err := authzdetails.Parse(t.AuthorizationDetails)
	if err != nil {
		return nil, err
	}
	return d.Payments, nil
}

// New checks c, discovers the JWKS URL (unless c.JWKSURL is set) and fetches
// the JWKS once, so that a misconfigured issuer fails at start-up rather than
// on the first request.
func New(ctx context.Context, c Config) (*Verifier, error) {
	if c.Issuer == "" {
		return nil, errors.New("rsverify: Config.Issuer is required")
	}
	if err := checkHTTPS(c.Issuer); err != nil {
		return nil, fmt.Errorf("rsverify: Config.Issuer: %w", err)
	}
	if c.Audience == "" {
		return nil, errors.New("rsverify: Config.Audience is required")
	}
	v := &Verifier{
		issuer:      c.Issuer,
		audience:    c.Audience,
		leeway:      c.Leeway,
		replay:      c.Replay,
		now:         c.Now,
		externalURL: c.ExternalURL,
		onError:     c.OnError,
	}
	if v.leeway <= 0 {
		v.leeway = DefaultLeeway
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.replay == nil {
		v.replay = NewMemoryReplayCache(DefaultReplayCacheSize, v.now)
	}
	if v.externalURL == nil {
		v.externalURL = defaultExternalURL
	}
	client := c.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	minRefresh := c.MinRefresh
	if minRefresh <= 0 {
		minRefresh = DefaultMinRefresh
	}

	jwksURL := c.JWKSURL
	if jwksURL == "" {
		var err error
		if jwksURL, err = discoverJWKS(ctx, client, c.Issuer); err != nil {
			return nil, err
		}
	}
	if err := checkHTTPS(jwksURL); err != nil {
		return nil, fmt.Errorf("rsverify: JWKS URL: %w", err)
	}
	v.keys = &keySet{client: client, url: jwksURL, minRefresh: minRefresh, now: v.now}
	if err := v.keys.load(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

func defaultExternalURL(r *http.Request) string {
	return "https://" + r.Host + r.URL.EscapedPath()
}

// checkHTTPS refuses anything but an absolute https URL without query or
// fragment: RFC 8414 §2 requires https for the issuer, and fetching signing
// keys over plain HTTP would let the network choose them.
func checkHTTPS(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return errors.New("must be an https URL without userinfo, query or fragment")
	}
	return nil
}

func invalidToken(reason string) error { return fmt.Errorf("%w: %s", ErrInvalidToken, reason) }
func invalidProof(reason string) error { return fmt.Errorf("%w: %s", ErrInvalidProof, reason) }

// Verify verifies the access token and DPoP proof of r. Errors wrap
// ErrInvalidToken or ErrInvalidProof, except a failure of the replay cache,
// which wraps neither (the request may be fine: it cannot be checked now).
func (v *Verifier) Verify(r *http.Request) (*Token, error) {
	ctx := r.Context()
	now := v.now()

	raw, err := accessToken(r)
	if err != nil {
		return nil, err
	}
	// RFC 9449 §4.3 check 1: exactly one DPoP header. Two could be a proxy
	// appending its own, or an attempt to make two components verify two
	// different proofs.
	proofs := r.Header.Values("DPoP")
	switch len(proofs) {
	case 0:
		return nil, invalidProof("no DPoP header with the DPoP-bound token")
	case 1:
	default:
		return nil, invalidProof("more than one DPoP header")
	}

	tok, err := v.verifyToken(ctx, raw, now)
	if err != nil {
		return nil, err
	}

	// RFC 9449 §7.1: the proof is made for this request and carries ath of
	// this token.
	proof, err := dpop.Verify(proofs[0], dpop.Options{
		Method:      r.Method,
		URL:         v.externalURL(r),
		Now:         now,
		Leeway:      v.leeway,
		AccessToken: raw,
	})
	if errors.Is(err, dpop.ErrBadOptions) {
		// The expected URL comes from the request's Host: a client that
		// sends a Host that does not make a URL gets a refusal, not a 500.
		return nil, fmt.Errorf("%w: request URL: %w", ErrInvalidProof, err)
	}
	if err != nil {
		return nil, err
	}

	// RFC 9449 §6.1, §7.1: the proof key is the key the token is bound to.
	// Without this check a stolen token works with any attacker key.
	if subtle.ConstantTimeCompare([]byte(proof.JKT), []byte(tok.JKT)) != 1 {
		return nil, invalidToken("token is bound to another key than the proof's (cnf.jkt)")
	}

	// RFC 9449 §11.1: a proof is single use. Checked last, so that only a
	// proof that passed every other check is remembered. It is remembered
	// as long as its iat is acceptable: after that, iat alone refuses it.
	replayed, err := v.replay.Seen(ctx, proof.JKT, proof.JTI, proof.IssuedAt.Add(v.leeway))
	if err != nil {
		return nil, fmt.Errorf("rsverify: replay cache: %w", err)
	}
	if replayed {
		return nil, invalidProof("proof jti already used")
	}
	return tok, nil
}

// accessToken reads "Authorization: DPoP <token>" (RFC 9449 §7.1; the scheme
// is case-insensitive, RFC 9110 §11.1).
func accessToken(r *http.Request) (string, error) {
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		return "", ErrNoToken
	}
	if len(values) > 1 {
		return "", invalidToken("more than one Authorization header")
	}
	scheme, token, _ := strings.Cut(values[0], " ")
	token = strings.TrimLeft(token, " ")
	switch {
	case strings.EqualFold(scheme, "DPoP"):
	case strings.EqualFold(scheme, "Bearer"):
		// RFC 9449 §7.2: a DPoP-bound token is not a bearer token; every
		// token this package accepts is DPoP-bound (cnf.jkt is required).
		return "", invalidToken("DPoP-bound token sent with the Bearer scheme")
	default:
		return "", invalidToken("Authorization scheme is not DPoP")
	}
	if token == "" {
		return "", invalidToken("empty token")
	}
	if len(token) > maxTokenSize {
		return "", invalidToken("token too large")
	}
	// RFC 9110 §11.2 token68; a JWT is a subset.
	for i := 0; i < len(token); i++ {
		if c := token[i]; !(('A' <= c && c <= 'Z') || ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') ||
			strings.IndexByte("-._~+/=", c) >= 0) {
			return "", invalidToken("token is not token68")
		}
	}
	return token, nil
}

// verifyToken checks the JWT access token: RFC 9068 §4 steps, ES256 only.
func (v *Verifier) verifyToken(ctx context.Context, raw string, now time.Time) (*Token, error) {
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		// RFC 9068 §4: the alg is fixed by configuration; "none", MACs
		// and other algorithms end here.
		return nil, invalidToken("not an ES256 compact JWS")
	}
	if len(jws.Signatures) != 1 {
		return nil, invalidToken("not exactly one signature")
	}
	h := jws.Signatures[0].Protected
	// RFC 9068 §4: typ must be at+jwt (application/at+jwt is the same media
	// type, RFC 7515 §4.1.9), so that an ID token or a DPoP proof signed by a
	// key in the same JWKS is never taken for an access token.
	typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
	if t := strings.ToLower(typ); t != "at+jwt" && t != "application/at+jwt" {
		return nil, invalidToken("typ is not at+jwt")
	}
	if _, ok := h.ExtraHeaders["crit"]; ok {
		return nil, invalidToken("crit header not supported")
	}
	if h.KeyID == "" {
		return nil, invalidToken("no kid")
	}
	key, err := v.keys.key(ctx, h.KeyID)
	if err != nil {
		return nil, err
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, invalidToken("signature does not verify")
	}
	return v.checkClaims(payload, now)
}

func (v *Verifier) checkClaims(payload []byte, now time.Time) (*Token, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(payload, &members); err != nil || members == nil {
		return nil, invalidToken("claims are not a JSON object")
	}
	t := &Token{}
	var err error

	// RFC 9068 §4: iss exactly the issuer, aud containing this resource.
	iss, err := str(members, "iss", true)
	if err != nil {
		return nil, err
	}
	if iss != v.issuer {
		return nil, invalidToken("iss is not the expected issuer")
	}
	if t.Audience, err = audience(members); err != nil {
		return nil, err
	}
	found := false
	for _, a := range t.Audience {
		if a == v.audience {
			found = true
			break
		}
	}
	if !found {
		return nil, invalidToken("aud does not include this resource")
	}

	// RFC 9068 §4 / RFC 7519 §4.1.4-6: lifetime, with leeway for skew.
	if t.ExpiresAt, err = numericDate(members, "exp", true); err != nil {
		return nil, err
	}
	if !t.ExpiresAt.After(now.Add(-v.leeway)) {
		return nil, invalidToken("token expired")
	}
	if t.IssuedAt, err = numericDate(members, "iat", true); err != nil {
		return nil, err
	}
	if t.IssuedAt.After(now.Add(v.leeway)) {
		return nil, invalidToken("iat is in the future")
	}
	if nbf, err := numericDate(members, "nbf", false); err != nil {
		return nil, err
	} else if nbf.After(now.Add(v.leeway)) {
		return nil, invalidToken("token not valid yet (nbf)")
	}

	// RFC 9068 §2.2 required claims.
	if t.Subject, err = str(members, "sub", true); err != nil {
		return nil, err
	}
	if t.ClientID, err = str(members, "client_id", true); err != nil {
		return nil, err
	}
	if t.JTI, err = str(members, "jti", true); err != nil {
		return nil, err
	}
	// Optional claims (RFC 9068 §2.2.1-3, RFC 8693 §4.2, RFC 9396 §9.1).
	scope, err := str(members, "scope", false)
	if err != nil {
		return nil, err
	}
	if scope != "" {
		t.Scopes = strings.Fields(scope)
	}
	if t.SessionID, err = str(members, "sid", false); err != nil {
		return nil, err
	}
	if t.ACR, err = str(members, "acr", false); err != nil {
		return nil, err
	}
	if raw, ok := members["amr"]; ok {
		if err := json.Unmarshal(raw, &t.AMR); err != nil {
			return nil, invalidToken("amr is not an array of strings")
		}
	}
	if t.AuthTime, err = numericDate(members, "auth_time", false); err != nil {
		return nil, err
	}
	if raw, ok := members["authorization_details"]; ok {
		var arr []json.RawMessage
		if err := json.Unmarshal(raw, &arr); err != nil || arr == nil {
			return nil, invalidToken("authorization_details is not an array")
		}
		t.AuthorizationDetails = append(json.RawMessage(nil), raw...)
	}

	// RFC 9449 §6.1: cnf.jkt, the thumbprint of the key the token is bound
	// to. Required: this package serves DPoP-bound tokens only.
	var cnf struct {
		JKT *string `json:"jkt"`
	}
	rawCnf, ok := members["cnf"]
	if !ok {
		return nil, invalidToken("no cnf: token is not DPoP-bound")
	}
	if err := json.Unmarshal(rawCnf, &cnf); err != nil || cnf.JKT == nil || *cnf.JKT == "" {
		return nil, invalidToken("cnf.jkt missing or not a string")
	}
	t.JKT = *cnf.JKT

	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.UseNumber()
	if err := dec.Decode(&t.Claims); err != nil {
		return nil, invalidToken("claims are not a JSON object")
	}
	return t, nil
}

func str(m map[string]json.RawMessage, name string, required bool) (string, error) {
	raw, ok := m[name]
	if !ok {
		if required {
			return "", invalidToken(name + " is missing")
		}
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || (required && s == "") {
		return "", invalidToken(name + " is not a non-empty string")
	}
	return s, nil
}

// audience reads aud, a string or an array of strings (RFC 7519 §4.1.3).
func audience(m map[string]json.RawMessage) ([]string, error) {
	raw, ok := m["aud"]
	if !ok {
		return nil, invalidToken("aud is missing")
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, invalidToken("aud is not a string or an array of strings")
	}
	return many, nil
}

// numericDate reads an RFC 7519 §2 NumericDate: a JSON number of seconds,
// integer or not. A string holding a number, or null, is refused.
func numericDate(m map[string]json.RawMessage, name string, required bool) (time.Time, error) {
	raw, ok := m[name]
	if !ok {
		if required {
			return time.Time{}, invalidToken(name + " is missing")
		}
		return time.Time{}, nil
	}
	var f float64
	if len(raw) == 0 || !(raw[0] == '-' || ('0' <= raw[0] && raw[0] <= '9')) || json.Unmarshal(raw, &f) != nil ||
		math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1<<40 {
		return time.Time{}, invalidToken(name + " is not a valid NumericDate")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

type ctxKey struct{}

// NewContext returns ctx carrying t, as Middleware does; useful in tests of
// handlers that call FromContext.
func NewContext(ctx context.Context, t *Token) context.Context {
	return context.WithValue(ctx, ctxKey{}, t)
}

// FromContext returns the token Middleware verified for this request.
func FromContext(ctx context.Context) (*Token, bool) {
	t, ok := ctx.Value(ctxKey{}).(*Token)
	return t, ok && t != nil
}
