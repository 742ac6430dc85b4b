package rsverify_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"strongroom.dev/api/authzdetails"
	"strongroom.dev/services/dpop"
	"strongroom.dev/services/rsverify"
)

const (
	audience = "https://api.bank.example"
	apiURL   = "https://api.bank.example/v1/accounts"
)

var b64 = base64.RawURLEncoding

// clock is a settable clock shared by the verifier and the test.
type clock struct{ t atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.t.Store(time.Date(2027, 3, 1, 9, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(0, c.t.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.t.Add(int64(d)) }

// issuer is a stand-in Strongroom: a real TLS server with RFC 8414 metadata
// and a JWKS whose keys the test controls.
type issuer struct {
	*httptest.Server
	mu           sync.Mutex
	keys         []*ecdsa.PrivateKey
	cacheControl string
	jwksFetches  atomic.Int32
	metaFetches  atomic.Int32
	metaIssuer   string // when set, the metadata names this issuer
}

func newIssuer(t testing.TB, keys ...*ecdsa.PrivateKey) *issuer {
	t.Helper()
	iss := &issuer{keys: keys, cacheControl: "public, max-age=300"}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		iss.metaFetches.Add(1)
		name := iss.URL
		iss.mu.Lock()
		if iss.metaIssuer != "" {
			name = iss.metaIssuer
		}
		iss.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                            name,
			"token_endpoint":                    iss.URL + "/oauth2/token",
			"jwks_uri":                          iss.URL + "/.well-known/jwks.json",
			"dpop_signing_alg_values_supported": []string{"ES256"},
		})
	})
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		iss.jwksFetches.Add(1)
		iss.mu.Lock()
		defer iss.mu.Unlock()
		keys := []map[string]any{
			// Keys a resource server must skip: another curve, an
			// encryption key, an RSA key.
			{"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AA", "y": "AA"},
			{"kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB"},
		}
		for _, k := range iss.keys {
			jwk := ecJWK(&k.PublicKey)
			jwk["kid"], jwk["use"], jwk["alg"] = dpop.Thumbprint(&k.PublicKey), "sig", "ES256"
			keys = append(keys, jwk)
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", iss.cacheControl)
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	})
	iss.Server = httptest.NewUnstartedServer(mux)
	// The "untrusted TLS certificate" test makes handshakes fail on purpose.
	iss.Config.ErrorLog = log.New(io.Discard, "", 0)
	iss.StartTLS()
	t.Cleanup(iss.Close)
	return iss
}

func (iss *issuer) publish(k *ecdsa.PrivateKey) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.keys = append(iss.keys, k)
}

func ecJWK(pub *ecdsa.PublicKey) map[string]any {
	b, err := pub.Bytes()
	if err != nil {
		panic(err)
	}
	return map[string]any{"kty": "EC", "crv": "P-256", "x": b64.EncodeToString(b[1:33]), "y": b64.EncodeToString(b[33:])}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// mint signs claims as an RFC 9068 access token with go-jose.
func mint(t testing.TB, key *ecdsa.PrivateKey, kid, typ string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithHeader(jose.HeaderKey("kid"), kid)
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawToken assembles a JWS from a header, claims and a signer, for tokens
// no honest library would make.
func rawToken(header, claims map[string]any, sign func([]byte) []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	return input + "." + b64.EncodeToString(sign([]byte(input)))
}

func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

// fixture is one verifier against one issuer, with a device key.
type fixture struct {
	iss     *issuer
	signing *ecdsa.PrivateKey
	kid     string
	device  *ecdsa.PrivateKey
	clock   *clock
	v       *rsverify.Verifier
}

func newFixture(t testing.TB, mod ...func(*rsverify.Config)) *fixture {
	t.Helper()
	f := &fixture{signing: newKey(t), device: newKey(t), clock: newClock()}
	f.kid = dpop.Thumbprint(&f.signing.PublicKey)
	f.iss = newIssuer(t, f.signing)
	c := rsverify.Config{
		Issuer:     f.iss.URL,
		Audience:   audience,
		HTTPClient: f.iss.Client(),
		Now:        f.clock.Now,
	}
	for _, m := range mod {
		m(&c)
	}
	v, err := rsverify.New(context.Background(), c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.v = v
	return f
}

// paymentDetails is what authd puts in a token after a biometric sign-in
// in which the user confirmed a payment: authzdetails' payment type.
var paymentDetails = json.RawMessage(`[{"type":"payment","amount":"12.50","currency":"EUR",` +
	`"creditor":{"name":"ACME Ltd","iban":"DE89370400440532013000"},"reference":"INV-2027-0042"}]`)

func (f *fixture) claims() map[string]any {
	now := f.clock.Now()
	return map[string]any{
		"iss":                   f.iss.URL,
		"sub":                   "user-42",
		"aud":                   []string{audience, "https://other.bank.example"},
		"client_id":             "mobile-app",
		"exp":                   now.Add(5 * time.Minute).Unix(),
		"iat":                   now.Unix(),
		"jti":                   "at-0001",
		"scope":                 "accounts:read payments:write",
		"sid":                   "sess-77",
		"auth_time":             now.Add(-2 * time.Minute).Unix(),
		"acr":                   "urn:strongroom:acr:biometric",
		"amr":                   []string{"user", "hwk"},
		"cnf":                   map[string]any{"jkt": dpop.Thumbprint(&f.device.PublicKey)},
		"authorization_details": paymentDetails,
	}
}

func (f *fixture) token(t testing.TB, claims map[string]any) string {
	return mint(t, f.signing, f.kid, "at+jwt", claims)
}

func (f *fixture) proof(t testing.TB, key *ecdsa.PrivateKey, method, url, token string, at time.Time) string {
	t.Helper()
	p, err := dpop.NewProof(key, method, url, "", token, at)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func request(method, url, authorization string, proofs ...string) *http.Request {
	r := httptest.NewRequest(method, url, nil)
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	for _, p := range proofs {
		r.Header.Add("DPoP", p)
	}
	return r
}

// goodRequest is a DPoP-bound GET of apiURL.
func (f *fixture) goodRequest(t testing.TB) (*http.Request, string) {
	tok := f.token(t, f.claims())
	return request("GET", apiURL, "DPoP "+tok, f.proof(t, f.device, "GET", apiURL, tok, f.clock.Now())), tok
}

func TestVerifyAcceptsAndFillsToken(t *testing.T) {
	f := newFixture(t)
	r, _ := f.goodRequest(t)
	tok, err := f.v.Verify(r)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	now := f.clock.Now()
	checks := []struct {
		name      string
		got, want any
	}{
		{"Subject", tok.Subject, "user-42"},
		{"ClientID", tok.ClientID, "mobile-app"},
		{"SessionID", tok.SessionID, "sess-77"},
		{"ACR", tok.ACR, "urn:strongroom:acr:biometric"},
		{"JKT", tok.JKT, dpop.Thumbprint(&f.device.PublicKey)},
		{"JTI", tok.JTI, "at-0001"},
		{"Scopes", fmt.Sprint(tok.Scopes), "[accounts:read payments:write]"},
		{"AMR", fmt.Sprint(tok.AMR), "[user hwk]"},
		{"Audience", fmt.Sprint(tok.Audience), "[" + audience + " https://other.bank.example]"},
		{"AuthTime", tok.AuthTime, now.Add(-2 * time.Minute)},
		{"IssuedAt", tok.IssuedAt, now},
		{"ExpiresAt", tok.ExpiresAt, now.Add(5 * time.Minute)},
		{"AuthorizationDetails", string(tok.AuthorizationDetails), string(paymentDetails)},
		{"Claims[sub]", tok.Claims["sub"], "user-42"},
		{"Claims[exp]", tok.Claims["exp"], json.Number(fmt.Sprint(now.Add(5 * time.Minute).Unix()))},
		{"HasScope", tok.HasScope("payments:write"), true},
		{"HasScope(other)", tok.HasScope("admin"), false},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if g, ok := c.got.(time.Time); ok {
				if !g.Equal(c.want.(time.Time)) {
					t.Errorf("got %v, want %v", g, c.want)
				}
				return
			}
			if c.got != c.want {
				t.Errorf("got %#v, want %#v", c.got, c.want)
			}
		})
	}
	if len(tok.Claims) != len(f.claims()) {
		t.Errorf("Claims has %d members, want %d", len(tok.Claims), len(f.claims()))
	}
	if _, ok := tok.Claims["cnf"].(map[string]any); !ok {
		t.Errorf("Claims[cnf] = %#v", tok.Claims["cnf"])
	}
}

func TestVerifyAcceptsVariants(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	cases := []struct {
		name   string
		claims map[string]any
		typ    string
		scheme string
		url    string // request URL; the proof is made for it
	}{
		{name: "aud as a string", claims: with(f.claims(), "aud", audience)},
		{name: "typ application/at+jwt", typ: "application/at+jwt"},
		{name: "scheme in lower case", scheme: "dpop"},
		{name: "expired within leeway", claims: with(f.claims(), "exp", now.Add(-30*time.Second).Unix())},
		{name: "iat slightly ahead", claims: with(f.claims(), "iat", now.Add(30*time.Second).Unix())},
		{name: "no optional claims", claims: with(f.claims(), "scope", nil, "sid", nil, "acr", nil, "amr", nil, "auth_time", nil, "authorization_details", nil)},
		{name: "host with default port", url: "https://api.bank.example:443/v1/accounts"},
		{name: "query is not part of htu", url: apiURL + "?page=2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			claims, typ, scheme, url := tc.claims, tc.typ, tc.scheme, tc.url
			if claims == nil {
				claims = f.claims()
			}
			if typ == "" {
				typ = "at+jwt"
			}
			if scheme == "" {
				scheme = "DPoP"
			}
			if url == "" {
				url = apiURL
			}
			tok := mint(t, f.signing, f.kid, typ, claims)
			r := request("GET", url, scheme+" "+tok, f.proof(t, f.device, "GET", url, tok, now))
			got, err := f.v.Verify(r)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if tc.name == "no optional claims" && (got.Scopes != nil || got.AMR != nil || !got.AuthTime.IsZero() || got.AuthorizationDetails != nil) {
				t.Errorf("absent claims not zero: %+v", got)
			}
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	good := f.claims()
	tok := f.token(t, good)
	proofFor := func(tok string) string { return f.proof(t, f.device, "GET", apiURL, tok, now) }
	other := newKey(t) // neither published nor the device key
	otherKid := dpop.Thumbprint(&other.PublicKey)

	alg := func(a string, sign func([]byte) []byte) string {
		return rawToken(map[string]any{"alg": a, "typ": "at+jwt", "kid": f.kid}, good, sign)
	}
	pubJWK, _ := json.Marshal(ecJWK(&f.signing.PublicKey))
	hs256 := alg("HS256", func(in []byte) []byte {
		m := hmac.New(sha256.New, pubJWK)
		m.Write(in)
		return m.Sum(nil)
	})
	none := alg("none", func([]byte) []byte { return nil })
	otherSigned := mint(t, other, f.kid, "at+jwt", good) // kid of a published key, someone else's signature
	unknownKid := mint(t, other, otherKid, "at+jwt", good)
	boundToOther := f.token(t, with(good, "cnf", map[string]any{"jkt": otherKid}))

	type tc struct {
		name string
		req  *http.Request
		want error
	}
	mk := func(name string, tok string, want error, mod ...func(*http.Request)) tc {
		r := request("GET", apiURL, "DPoP "+tok, proofFor(tok))
		for _, m := range mod {
			m(r)
		}
		return tc{name, r, want}
	}
	withClaims := func(name string, claims map[string]any) tc {
		return mk(name, f.token(t, claims), rsverify.ErrInvalidToken)
	}
	cases := []tc{
		{"no token", request("GET", apiURL, "", proofFor(tok)), rsverify.ErrNoToken},
		mk("Bearer scheme", tok, rsverify.ErrInvalidToken, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }),
		mk("Basic scheme", tok, rsverify.ErrInvalidToken, func(r *http.Request) { r.Header.Set("Authorization", "Basic dXNlcjpwYXNz") }),
		mk("empty DPoP credentials", tok, rsverify.ErrInvalidToken, func(r *http.Request) { r.Header.Set("Authorization", "DPoP ") }),
		mk("two Authorization headers", tok, rsverify.ErrInvalidToken, func(r *http.Request) { r.Header.Add("Authorization", "DPoP "+tok) }),
		mk("token with a comma", tok, rsverify.ErrInvalidToken, func(r *http.Request) { r.Header.Set("Authorization", "DPoP "+tok+",x") }),
		mk("huge token", tok, rsverify.ErrInvalidToken, func(r *http.Request) { r.Header.Set("Authorization", "DPoP "+strings.Repeat("A", 17<<10)) }),
		withClaims("expired", with(good, "exp", now.Add(-2*time.Minute).Unix())),
		withClaims("exp missing", with(good, "exp", nil)),
		withClaims("exp as a string", with(good, "exp", fmt.Sprint(now.Add(time.Minute).Unix()))),
		withClaims("iat in the future", with(good, "iat", now.Add(5*time.Minute).Unix())),
		withClaims("iat null", with(good, "iat", json.RawMessage("null"))),
		withClaims("nbf in the future", with(good, "nbf", now.Add(5*time.Minute).Unix())),
		withClaims("wrong iss", with(good, "iss", "https://evil.example")),
		withClaims("iss with a trailing slash", with(good, "iss", f.iss.URL+"/")),
		withClaims("wrong aud", with(good, "aud", "https://other.bank.example")),
		withClaims("aud missing", with(good, "aud", nil)),
		withClaims("empty aud array", with(good, "aud", []string{})),
		withClaims("sub missing", with(good, "sub", nil)),
		withClaims("client_id missing", with(good, "client_id", nil)),
		withClaims("missing cnf", with(good, "cnf", nil)),
		withClaims("cnf without jkt", with(good, "cnf", map[string]any{"jwk": ecJWK(&f.device.PublicKey)})),
		withClaims("authorization_details not an array", with(good, "authorization_details", map[string]any{"type": "payment"})),
		withClaims("authorization_details a string", with(good, "authorization_details", string(paymentDetails))),
		withClaims("authorization_details null", with(good, "authorization_details", json.RawMessage("null"))),
		withClaims("amr not an array", with(good, "amr", "pin")),
		mk("unknown kid", unknownKid, rsverify.ErrInvalidToken),
		mk("no kid", rawToken(map[string]any{"alg": "ES256", "typ": "at+jwt"}, good, zeroSig), rsverify.ErrInvalidToken),
		mk("wrong signature", otherSigned, rsverify.ErrInvalidToken),
		mk("alg none", none, rsverify.ErrInvalidToken),
		mk("HS256 keyed with the public key", hs256, rsverify.ErrInvalidToken),
		mk("typ JWT", mint(t, f.signing, f.kid, "JWT", good), rsverify.ErrInvalidToken),
		mk("typ missing", mint(t, f.signing, f.kid, "", good), rsverify.ErrInvalidToken),
		mk("typ dpop+jwt (a proof is not a token)", mint(t, f.signing, f.kid, "dpop+jwt", good), rsverify.ErrInvalidToken),
		mk("proof by another key (cnf mismatch)", tok, rsverify.ErrInvalidToken, func(r *http.Request) {
			r.Header.Set("DPoP", f.proof(t, other, "GET", apiURL, tok, now))
		}),
		mk("token bound to another key", boundToOther, rsverify.ErrInvalidToken),
		mk("missing proof", tok, rsverify.ErrInvalidProof, func(r *http.Request) { r.Header.Del("DPoP") }),
		mk("two DPoP headers", tok, rsverify.ErrInvalidProof, func(r *http.Request) { r.Header.Add("DPoP", proofFor(tok)) }),
		mk("wrong ath (proof for another token)", tok, rsverify.ErrInvalidProof, func(r *http.Request) {
			r.Header.Set("DPoP", proofFor(f.token(t, with(good, "jti", "at-0002"))))
		}),
		mk("missing ath", tok, rsverify.ErrInvalidProof, func(r *http.Request) { r.Header.Set("DPoP", proofFor("")) }),
		mk("wrong htu", tok, rsverify.ErrInvalidProof, func(r *http.Request) {
			r.Header.Set("DPoP", f.proof(t, f.device, "GET", "https://api.bank.example/v1/payments", tok, now))
		}),
		mk("htu of another host", tok, rsverify.ErrInvalidProof, func(r *http.Request) {
			r.Header.Set("DPoP", f.proof(t, f.device, "GET", "https://evil.example/v1/accounts", tok, now))
		}),
		mk("wrong htm", tok, rsverify.ErrInvalidProof, func(r *http.Request) {
			r.Header.Set("DPoP", f.proof(t, f.device, "POST", apiURL, tok, now))
		}),
		mk("proof iat stale", tok, rsverify.ErrInvalidProof, func(r *http.Request) {
			r.Header.Set("DPoP", f.proof(t, f.device, "GET", apiURL, tok, now.Add(-5*time.Minute)))
		}),
		mk("proof is the access token", tok, rsverify.ErrInvalidProof, func(r *http.Request) { r.Header.Set("DPoP", tok) }),
	}
	// The check that must fire, where an earlier one could hide it.
	reasons := map[string]string{
		"Bearer scheme":                       "Bearer scheme",
		"expired":                             "expired",
		"wrong iss":                           "iss is not",
		"wrong aud":                           "aud does not include",
		"missing cnf":                         "no cnf",
		"unknown kid":                         "kid not in the issuer's JWKS",
		"wrong signature":                     "signature does not verify",
		"alg none":                            "not an ES256",
		"HS256 keyed with the public key":     "not an ES256",
		"typ JWT":                             "typ is not at+jwt",
		"proof by another key (cnf mismatch)": "cnf.jkt",
		"missing proof":                       "no DPoP header",
		"two DPoP headers":                    "more than one DPoP header",
		"wrong ath (proof for another token)": "ath does not match",
		"missing ath":                         "ath is missing",
		"wrong htu":                           "htu does not match",
		"wrong htm":                           "htm does not match",
		"proof iat stale":                     "iat is too old",
		"authorization_details not an array":  "authorization_details is not an array",
		"authorization_details a string":      "authorization_details is not an array",
		"authorization_details null":          "authorization_details is not an array",
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := f.v.Verify(c.req)
			if err == nil {
				t.Fatalf("accepted: %+v", got)
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("error %q does not match %v", err, c.want)
			}
			// Errors go to logs: they must not carry credentials.
			for _, secret := range append([]string{c.req.Header.Get("DPoP")}, strings.Fields(c.req.Header.Get("Authorization"))...) {
				if len(secret) > 16 && strings.Contains(err.Error(), secret) {
					t.Fatalf("error echoes a credential: %v", err)
				}
			}

			// The middleware answers with the matching challenge and never
			// calls the handler.
			rec := httptest.NewRecorder()
			f.v.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
				t.Error("handler called for a refused request")
			})).ServeHTTP(rec, c.req)
			wantChallenge := map[error]string{
				rsverify.ErrNoToken:      `DPoP algs="ES256"`,
				rsverify.ErrInvalidToken: `DPoP error="invalid_token", algs="ES256"`,
				rsverify.ErrInvalidProof: `DPoP error="invalid_dpop_proof", algs="ES256"`,
			}[c.want]
			if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != wantChallenge {
				t.Errorf("middleware: %d %q, want 401 %q", rec.Code, rec.Header().Get("WWW-Authenticate"), wantChallenge)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q", ct)
			}
			if want, ok := reasons[c.name]; ok && !strings.Contains(err.Error(), want) {
				t.Errorf("error %q, want the reason %q", err, want)
			}
		})
	}
}

func TestTokenPayments(t *testing.T) {
	f := newFixture(t)
	verify := func(t *testing.T, claims map[string]any) *rsverify.Token {
		t.Helper()
		tok := f.token(t, claims)
		got, err := f.v.Verify(request("GET", apiURL, "DPoP "+tok, f.proof(t, f.device, "GET", apiURL, tok, f.clock.Now())))
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		return got
	}

	t.Run("details", func(t *testing.T) {
		// Two payments, in the order the user confirmed them.
		details := json.RawMessage(`[{"type":"payment","amount":"249.90","currency":"EUR",` +
			`"creditor":{"name":"Électricité du Nord","iban":"FR1420041010050500013M02606"},"reference":"Facture 2027-03"},` +
			`{"type":"payment","amount":"1","currency":"CHF","creditor":{"name":"Bäckerei"}}]`)
		tok := verify(t, with(f.claims(), "authorization_details", details))
		if string(tok.AuthorizationDetails) != string(details) {
			t.Errorf("AuthorizationDetails = %s, want %s", tok.AuthorizationDetails, details)
		}
		got, err := tok.Payments()
		if err != nil {
			t.Fatalf("Payments: %v", err)
		}
		want := []authzdetails.Payment{
			{Type: "payment", Amount: "249.90", Currency: "EUR", Reference: "Facture 2027-03",
				Creditor: authzdetails.Creditor{Name: "Électricité du Nord", IBAN: "FR1420041010050500013M02606"}},
			{Type: "payment", Amount: "1", Currency: "CHF", Creditor: authzdetails.Creditor{Name: "Bäckerei"}},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Payments = %+v, want %+v", got, want)
		}
	})

	t.Run("fixture", func(t *testing.T) {
		got, err := verify(t, f.claims()).Payments()
		if err != nil || len(got) != 1 || got[0].Amount != "12.50" || got[0].Creditor.IBAN != "DE89370400440532013000" {
			t.Errorf("Payments = %+v, %v", got, err)
		}
	})

	t.Run("absent", func(t *testing.T) {
		tok := verify(t, with(f.claims(), "authorization_details", nil))
		got, err := tok.Payments()
		if tok.AuthorizationDetails != nil || got != nil || err != nil {
			t.Errorf("AuthorizationDetails %s, Payments %+v, %v; want nil, nil, nil", tok.AuthorizationDetails, got, err)
		}
	})

	// An array the token verification accepts (it is an array) but that
	// is not a valid payment list: Payments refuses it rather than
	// returning the entries it understands.
	for name, details := range map[string]string{
		"empty array":        `[]`,
		"unknown type":       `[{"type":"account_information","actions":["read"]}]`,
		"creditor a string":  `[{"type":"payment","amount":"12.50","currency":"EUR","creditor":"ACME Ltd"}]`,
		"unknown member":     `[{"type":"payment","amount":"12.50","currency":"EUR","creditor":{"name":"ACME"},"fee":"0"}]`,
		"amount as a number": `[{"type":"payment","amount":12.5,"currency":"EUR","creditor":{"name":"ACME"}}]`,
		"payment and other": `[{"type":"payment","amount":"12.50","currency":"EUR","creditor":{"name":"ACME"}},` +
			`{"type":"other"}]`,
	} {
		t.Run(name, func(t *testing.T) {
			tok := verify(t, with(f.claims(), "authorization_details", json.RawMessage(details)))
			got, err := tok.Payments()
			if !errors.Is(err, authzdetails.ErrInvalid) || got != nil {
				t.Errorf("Payments = %+v, %v; want nil, authzdetails.ErrInvalid", got, err)
			}
		})
	}
}

// zeroSig is a well-formed but worthless ES256 signature.
func zeroSig([]byte) []byte { return make([]byte, 64) }

func TestReplayedProof(t *testing.T) {
	f := newFixture(t)
	tok := f.token(t, f.claims())
	proof := f.proof(t, f.device, "GET", apiURL, tok, f.clock.Now())
	if _, err := f.v.Verify(request("GET", apiURL, "DPoP "+tok, proof)); err != nil {
		t.Fatalf("first use: %v", err)
	}
	_, err := f.v.Verify(request("GET", apiURL, "DPoP "+tok, proof))
	if !errors.Is(err, rsverify.ErrInvalidProof) || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("replay: err = %v", err)
	}
	// A fresh proof with the same token is fine: the token is reusable,
	// proofs are not.
	if _, err := f.v.Verify(request("GET", apiURL, "DPoP "+tok, f.proof(t, f.device, "GET", apiURL, tok, f.clock.Now()))); err != nil {
		t.Fatalf("fresh proof: %v", err)
	}
	// Once iat + leeway has passed, the proof is refused for its age even
	// though the replay cache has forgotten it.
	f.clock.Advance(61 * time.Second)
	if _, err := f.v.Verify(request("GET", apiURL, "DPoP "+tok, proof)); !errors.Is(err, rsverify.ErrInvalidProof) {
		t.Fatalf("old proof: err = %v", err)
	}
}

func TestReplayCacheFailureIs503(t *testing.T) {
	f := newFixture(t, func(c *rsverify.Config) { c.Replay = failingCache{} })
	r, _ := f.goodRequest(t)
	_, err := f.v.Verify(r)
	if err == nil || errors.Is(err, rsverify.ErrInvalidToken) || errors.Is(err, rsverify.ErrInvalidProof) {
		t.Fatalf("err = %v", err)
	}
	r, _ = f.goodRequest(t)
	rec := httptest.NewRecorder()
	f.v.Middleware(http.NotFoundHandler()).ServeHTTP(rec, r)
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status %d", rec.Code)
	}
}

type failingCache struct{}

func (failingCache) Seen(context.Context, string, string, time.Time) (bool, error) {
	return false, errors.New("redis: connection refused")
}

// TestUnknownKidRefetchesOnce: tokens with an unknown kid make one JWKS
// fetch per MinRefresh, however many arrive.
func TestUnknownKidRefetchesOnce(t *testing.T) {
	f := newFixture(t)
	if n := f.iss.jwksFetches.Load(); n != 1 {
		t.Fatalf("New fetched the JWKS %d times", n)
	}
	stranger := newKey(t)
	tok := mint(t, stranger, dpop.Thumbprint(&stranger.PublicKey), "at+jwt", f.claims())

	// Right after start: no refetch, the JWKS was fetched less than
	// MinRefresh ago.
	for range 3 {
		r := request("GET", apiURL, "DPoP "+tok, f.proof(t, f.device, "GET", apiURL, tok, f.clock.Now()))
		if _, err := f.v.Verify(r); !errors.Is(err, rsverify.ErrInvalidToken) {
			t.Fatalf("err = %v", err)
		}
	}
	if n := f.iss.jwksFetches.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times within MinRefresh", n)
	}

	// After MinRefresh: one refetch, even for 20 concurrent requests.
	f.clock.Advance(31 * time.Second)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := request("GET", apiURL, "DPoP "+tok, f.proof(t, f.device, "GET", apiURL, tok, f.clock.Now()))
			if _, err := f.v.Verify(r); !errors.Is(err, rsverify.ErrInvalidToken) {
				t.Errorf("err = %v", err)
			}
		}()
	}
	wg.Wait()
	if n := f.iss.jwksFetches.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (start + one refetch)", n)
	}
	if n := f.iss.metaFetches.Load(); n != 1 {
		t.Errorf("metadata fetched %d times, want 1", n)
	}
}

// TestKeyRotation: the issuer publishes a new key and starts signing with
// it; the verifier picks it up with one refetch.
func TestKeyRotation(t *testing.T) {
	f := newFixture(t)
	next := newKey(t)
	nextKid := dpop.Thumbprint(&next.PublicKey)
	f.iss.publish(next)
	f.clock.Advance(time.Minute) // past MinRefresh, before max-age

	before := f.iss.jwksFetches.Load()
	for i := range 3 {
		tok := mint(t, next, nextKid, "at+jwt", with(f.claims(), "jti", fmt.Sprint("rot-", i)))
		r := request("GET", apiURL, "DPoP "+tok, f.proof(t, f.device, "GET", apiURL, tok, f.clock.Now()))
		if _, err := f.v.Verify(r); err != nil {
			t.Fatalf("token %d with the new kid: %v", i, err)
		}
	}
	if n := f.iss.jwksFetches.Load() - before; n != 1 {
		t.Errorf("%d refetches, want 1", n)
	}
	// The old key still verifies (it stays published until its tokens
	// expire).
	r, _ := f.goodRequest(t)
	if _, err := f.v.Verify(r); err != nil {
		t.Errorf("old kid after rotation: %v", err)
	}
}

// TestCacheControlMaxAge: the JWKS is refetched when its max-age runs out,
// not before.
func TestCacheControlMaxAge(t *testing.T) {
	f := newFixture(t)
	f.iss.mu.Lock()
	f.iss.cacheControl = "max-age=120"
	f.iss.mu.Unlock()
	f.clock.Advance(299 * time.Second) // the first response said max-age=300
	r, _ := f.goodRequest(t)
	if _, err := f.v.Verify(r); err != nil {
		t.Fatal(err)
	}
	if n := f.iss.jwksFetches.Load(); n != 1 {
		t.Fatalf("fetched %d times before max-age", n)
	}
	f.clock.Advance(2 * time.Second)
	r, _ = f.goodRequest(t)
	if _, err := f.v.Verify(r); err != nil {
		t.Fatal(err)
	}
	if n := f.iss.jwksFetches.Load(); n != 2 {
		t.Fatalf("fetched %d times after max-age, want 2", n)
	}
	// The new response's max-age (120 s) now applies.
	f.clock.Advance(119 * time.Second)
	r, _ = f.goodRequest(t)
	_, _ = f.v.Verify(r)
	f.clock.Advance(2 * time.Second)
	r, _ = f.goodRequest(t)
	_, _ = f.v.Verify(r)
	if n := f.iss.jwksFetches.Load(); n != 3 {
		t.Fatalf("fetched %d times, want 3", n)
	}
}

// TestStaleKeysWhenIssuerDown: when the JWKS cannot be fetched, the keys
// already known keep working.
func TestStaleKeysWhenIssuerDown(t *testing.T) {
	f := newFixture(t)
	f.iss.Close()
	f.clock.Advance(10 * time.Minute)
	r, _ := f.goodRequest(t)
	if _, err := f.v.Verify(r); err != nil {
		t.Fatalf("known key with the issuer down: %v", err)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	iss := newIssuer(t, newKey(t))
	ctx := context.Background()
	cases := map[string]rsverify.Config{
		"no issuer":          {Audience: audience, HTTPClient: iss.Client()},
		"no audience":        {Issuer: iss.URL, HTTPClient: iss.Client()},
		"http issuer":        {Issuer: strings.Replace(iss.URL, "https", "http", 1), Audience: audience, HTTPClient: iss.Client()},
		"http JWKS URL":      {Issuer: iss.URL, JWKSURL: "http://example.com/jwks", Audience: audience, HTTPClient: iss.Client()},
		"untrusted TLS cert": {Issuer: iss.URL, Audience: audience},
		"JWKS not found":     {Issuer: iss.URL, JWKSURL: iss.URL + "/nope", Audience: audience, HTTPClient: iss.Client()},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := rsverify.New(ctx, c); err == nil {
				t.Error("New accepted it")
			}
		})
	}
	t.Run("metadata names another issuer", func(t *testing.T) {
		iss.mu.Lock()
		iss.metaIssuer = "https://evil.example"
		iss.mu.Unlock()
		defer func() { iss.mu.Lock(); iss.metaIssuer = ""; iss.mu.Unlock() }()
		_, err := rsverify.New(ctx, rsverify.Config{Issuer: iss.URL, Audience: audience, HTTPClient: iss.Client()})
		if err == nil || !strings.Contains(err.Error(), "names issuer") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("explicit JWKS URL skips discovery", func(t *testing.T) {
		before := iss.metaFetches.Load()
		_, err := rsverify.New(ctx, rsverify.Config{Issuer: iss.URL, JWKSURL: iss.URL + "/.well-known/jwks.json", Audience: audience, HTTPClient: iss.Client()})
		if err != nil || iss.metaFetches.Load() != before {
			t.Errorf("err = %v, metadata fetches %d -> %d", err, before, iss.metaFetches.Load())
		}
	})
}

// TestMiddlewareOverRealHTTP runs the middleware in a real TLS server, with
// the default ExternalURL ("https://" + Host + path), as a bank API would.
func TestMiddlewareOverRealHTTP(t *testing.T) {
	var refused []error
	var mu sync.Mutex
	f := newFixture(t, func(c *rsverify.Config) {
		c.OnError = func(_ *http.Request, err error) { mu.Lock(); refused = append(refused, err); mu.Unlock() }
	})
	api := httptest.NewTLSServer(f.v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := rsverify.FromContext(r.Context())
		if !ok {
			http.Error(w, "no token in context", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "accounts of %s", tok.Subject)
	})))
	defer api.Close()

	tok := f.token(t, f.claims())
	url := api.URL + "/v1/accounts"
	proof := f.proof(t, f.device, "GET", url, tok, f.clock.Now())
	call := func() *http.Response {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "DPoP "+tok)
		req.Header.Set("DPoP", proof)
		resp, err := api.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := call()
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "accounts of user-42" {
		t.Fatalf("first call: %d %q", resp.StatusCode, body)
	}
	resp = call() // same proof again
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `DPoP error="invalid_dpop_proof", algs="ES256"` {
		t.Fatalf("replay: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil || p["code"] != "invalid_dpop_proof" || p["status"] != float64(401) {
		t.Errorf("problem body %s", body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(refused) != 1 || !errors.Is(refused[0], rsverify.ErrInvalidProof) {
		t.Errorf("OnError saw %v", refused)
	}
}

func TestMemoryReplayCache(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	cache := rsverify.NewMemoryReplayCache(3, c.Now)
	until := c.Now().Add(time.Minute)

	seen := func(jkt, jti string, until time.Time) bool {
		t.Helper()
		r, err := cache.Seen(ctx, jkt, jti, until)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if seen("k1", "a", until) || !seen("k1", "a", until) {
		t.Fatal("second use not detected")
	}
	if seen("k2", "a", until) {
		t.Fatal("same jti under another key is not a replay")
	}
	if seen("k1", "b", c.Now().Add(time.Second)) {
		t.Fatal("fresh entry reported as replay")
	}
	if _, err := cache.Seen(ctx, "k1", "c", until); !errors.Is(err, rsverify.ErrReplayCacheFull) {
		t.Fatalf("full cache: err = %v", err)
	}
	c.Advance(2 * time.Second) // "b" expires
	if seen("k1", "c", until) {
		t.Fatal("c")
	}
	if !seen("k1", "a", until) {
		t.Fatal("unexpired entry forgotten")
	}
	c.Advance(time.Minute)
	if cache.Seen(ctx, "k9", "z", c.Now().Add(time.Second)); cache.Len() != 1 {
		t.Fatalf("expired entries kept: %d", cache.Len())
	}

	// Concurrent uses of one proof: exactly one wins.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r, err := cache.Seen(ctx, "race", "x", c.Now().Add(time.Minute)); err == nil && !r {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent first uses", wins.Load())
	}
}

// BenchmarkVerify measures a full request verification: token signature,
// claims, proof signature and checks, with a no-op replay cache so one
// request can be verified repeatedly.
func BenchmarkVerify(b *testing.B) {
	f := newFixture(b, func(c *rsverify.Config) { c.Replay = noReplay{} })
	r, _ := f.goodRequest(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.v.Verify(r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
}

type noReplay struct{}

func (noReplay) Seen(context.Context, string, string, time.Time) (bool, error) { return false, nil }
