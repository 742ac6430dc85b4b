package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

// Test fixtures: a fixed clock, a request and a token. Keys are real, fresh
// ones: nothing in these tests mocks crypto.
var (
	testNow    = time.Unix(1_800_000_000, 0).UTC()
	testMethod = "POST"
	testURL    = "https://auth.bank.example/oauth2/token"
	testToken  = "eyJhbGciOiJFUzI1NiJ9.access-token-secret.sig"
	testNonce  = "server-nonce-7f3a9c1e"
)

var enc = base64.RawURLEncoding

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// publicJWK is the JWK of an EC public key, as a map so tests can tamper
// with it.
func publicJWK(pub *ecdsa.PublicKey) map[string]any {
	b, err := pub.Bytes()
	if err != nil {
		panic(err)
	}
	size := (len(b) - 1) / 2
	crv := map[int]string{32: "P-256", 48: "P-384", 66: "P-521"}[size]
	return map[string]any{"kty": "EC", "crv": crv, "x": enc.EncodeToString(b[1 : 1+size]), "y": enc.EncodeToString(b[1+size:])}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// rawJWS assembles a compact JWS from exact header and payload bytes and a
// signer function over the signing input, so tests can build proofs that no
// well-behaved library would produce.
func rawJWS(header, payload []byte, sign func(input []byte) []byte) string {
	input := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	return input + "." + enc.EncodeToString(sign([]byte(input)))
}

// es256 signs the input with key as RFC 7518 §3.4 says: R||S, 32 bytes each.
func es256(key *ecdsa.PrivateKey) func([]byte) []byte {
	return func(input []byte) []byte {
		h := sha256.Sum256(input)
		r, s, err := ecdsa.Sign(rand.Reader, key, h[:])
		if err != nil {
			panic(err)
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out
	}
}

// craft signs header and claims (as JSON) with key using ES256.
func craft(key *ecdsa.PrivateKey, header, claims map[string]any) string {
	return rawJWS(mustJSON(header), mustJSON(claims), es256(key))
}

func goodHeader(key *ecdsa.PrivateKey) map[string]any {
	return map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": publicJWK(&key.PublicKey)}
}

func goodClaims() map[string]any {
	return map[string]any{
		"jti": "e1j3V_bKic8-LAEB", "htm": testMethod, "htu": testURL,
		"iat": testNow.Unix(), "ath": AccessTokenHash(testToken), "nonce": testNonce,
	}
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

func goodOptions() Options {
	return Options{
		Method: testMethod, URL: testURL, Now: testNow, AccessToken: testToken,
		Nonce: func(n string) error {
			if n != testNonce {
				return errors.New("stale nonce " + n)
			}
			return nil
		},
	}
}

func TestVerifyAccepts(t *testing.T) {
	key := newKey(t)
	h := goodHeader(key)
	c := goodClaims()

	t.Run("NewProof round trip", func(t *testing.T) {
		proof, err := NewProof(key, testMethod, testURL+"?ignored=1#frag", testNonce, testToken, testNow)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Verify(proof, goodOptions())
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if p.JKT != Thumbprint(&key.PublicKey) || !p.Key.Equal(&key.PublicKey) {
			t.Errorf("key/JKT = %v/%s", p.Key, p.JKT)
		}
		if len(p.JTI) < 22 { // 16 random bytes, base64url
			t.Errorf("JTI %q too short", p.JTI)
		}
		if !p.IssuedAt.Equal(testNow) || p.Nonce != testNonce || p.Method != testMethod || p.URL != testURL {
			t.Errorf("proof = %+v", p)
		}
	})

	cases := []struct {
		name   string
		header map[string]any
		claims map[string]any
		opts   func(*Options)
	}{
		{name: "all claims", header: h, claims: c},
		{name: "default https port in claim", claims: with(c, "htu", "https://auth.bank.example:443/oauth2/token")},
		{name: "default https port in options", claims: c, opts: func(o *Options) { o.URL = "https://auth.bank.example:443/oauth2/token" }},
		{name: "empty port", claims: with(c, "htu", "https://auth.bank.example:/oauth2/token")},
		{name: "default http port", claims: with(c, "htu", "http://localhost:80/x"), opts: func(o *Options) { o.URL = "http://localhost/x" }},
		{name: "non-default port both sides", claims: with(c, "htu", "https://127.0.0.1:8443/oauth2/token"), opts: func(o *Options) { o.URL = "https://127.0.0.1:8443/oauth2/token" }},
		{name: "IPv6 host with default port", claims: with(c, "htu", "https://[::1]:443/t"), opts: func(o *Options) { o.URL = "https://[::1]/t" }},
		{name: "scheme and host case", claims: with(c, "htu", "HTTPS://Auth.Bank.EXAMPLE/oauth2/token")},
		{name: "options URL query and fragment are ignored", claims: c, opts: func(o *Options) { o.URL = testURL + "?a=b#c" }},
		{name: "percent-encoded unreserved", claims: with(c, "htu", "https://auth.bank.example/%6fauth2/token")},
		{name: "percent-encoding hex case", claims: with(c, "htu", "https://h.example/a%2fb"), opts: func(o *Options) { o.URL = "https://h.example/a%2Fb" }},
		{name: "dot segments", claims: with(c, "htu", "https://auth.bank.example/x/../oauth2/./token")},
		{name: "empty path is /", claims: with(c, "htu", "https://h.example"), opts: func(o *Options) { o.URL = "https://h.example/" }},
		{name: "iat float", claims: with(c, "iat", float64(testNow.Unix())+0.25)},
		{name: "iat at the edge of the window", claims: with(c, "iat", testNow.Add(-60*time.Second).Unix())},
		{name: "iat slightly ahead", claims: with(c, "iat", testNow.Add(59*time.Second).Unix())},
		{name: "custom leeway", claims: with(c, "iat", testNow.Add(-5*time.Minute).Unix()), opts: func(o *Options) { o.Leeway = 6 * time.Minute }},
		{name: "no nonce func, no nonce", claims: with(c, "nonce", nil), opts: func(o *Options) { o.Nonce = nil }},
		{name: "no token, no ath", claims: with(c, "ath", nil), opts: func(o *Options) { o.AccessToken = "" }},
		{name: "unknown claims and header parameters are ignored", header: with(h, "x-extra", 1), claims: with(c, "extra", []int{1})},
		{name: "jti at the length limit", claims: with(c, "jti", strings.Repeat("j", 128))},
		{name: "jwk with extra public members", header: with(h, "jwk", with(publicJWK(&key.PublicKey), "use", "sig", "kid", "k1"))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr, cl := tc.header, tc.claims
			if hdr == nil {
				hdr = h
			}
			if cl == nil {
				cl = c
			}
			o := goodOptions()
			if tc.opts != nil {
				tc.opts(&o)
			}
			p, err := Verify(craft(key, hdr, cl), o)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if p.JKT != Thumbprint(&key.PublicKey) {
				t.Errorf("JKT = %s", p.JKT)
			}
		})
	}

	t.Run("iat fraction is kept", func(t *testing.T) {
		p, err := Verify(craft(key, h, with(c, "iat", float64(testNow.Unix())+0.5)), goodOptions())
		if err != nil {
			t.Fatal(err)
		}
		if got := p.IssuedAt.Sub(testNow); got != 500*time.Millisecond {
			t.Errorf("IssuedAt - now = %v", got)
		}
	})
}

func TestVerifyRefuses(t *testing.T) {
	key := newKey(t)
	other := newKey(t)
	h := goodHeader(key)
	c := goodClaims()
	hJSON, cJSON := mustJSON(h), mustJSON(c)
	good := craft(key, h, c)
	parts := strings.Split(good, ".")

	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwkBytes := mustJSON(publicJWK(&key.PublicKey))
	hs := func(alg string, size int) string {
		// The classic key-confusion attack: a MAC keyed with the public
		// key bytes that a naive verifier would also feed to HMAC.
		hdr := mustJSON(with(h, "alg", alg))
		return rawJWS(hdr, cJSON, func(in []byte) []byte {
			if size == 32 {
				m := hmac.New(sha256.New, jwkBytes)
				m.Write(in)
				return m.Sum(nil)
			}
			m := hmac.New(sha512.New, jwkBytes)
			m.Write(in)
			return m.Sum(nil)
		})
	}
	rs256 := rawJWS(mustJSON(map[string]any{"typ": "dpop+jwt", "alg": "RS256", "jwk": map[string]any{
		"kty": "RSA", "n": enc.EncodeToString(rsaKey.N.Bytes()), "e": enc.EncodeToString(big.NewInt(int64(rsaKey.E)).Bytes()),
	}}), cJSON, func(in []byte) []byte {
		d := sha256.Sum256(in)
		s, err := rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.SHA256, d[:])
		if err != nil {
			panic(err)
		}
		return s
	})
	es384 := rawJWS(mustJSON(map[string]any{"typ": "dpop+jwt", "alg": "ES384", "jwk": publicJWK(&p384.PublicKey)}), cJSON, func(in []byte) []byte {
		d := sha512.Sum384(in)
		r, s, err := ecdsa.Sign(rand.Reader, p384, d[:])
		if err != nil {
			panic(err)
		}
		out := make([]byte, 96)
		r.FillBytes(out[:48])
		s.FillBytes(out[48:])
		return out
	})
	eddsa := rawJWS(mustJSON(map[string]any{"typ": "dpop+jwt", "alg": "EdDSA", "jwk": map[string]any{
		"kty": "OKP", "crv": "Ed25519", "x": enc.EncodeToString(edPub),
	}}), cJSON, func(in []byte) []byte { return ed25519.Sign(edPriv, in) })

	withD := publicJWK(&key.PublicKey)
	withD["d"] = enc.EncodeToString(must(key.Bytes()))
	offCurve := publicJWK(&key.PublicKey)
	offCurve["y"] = enc.EncodeToString(make([]byte, 32))

	// Two signatures need the general JWS JSON serialization (RFC 7515
	// §7.2.1); flattened is the one-signature JSON form.
	prot := enc.EncodeToString(hJSON)
	twoSigs := string(mustJSON(map[string]any{
		"payload": parts[1],
		"signatures": []map[string]any{
			{"protected": prot, "signature": parts[2]},
			{"protected": prot, "signature": parts[2]},
		},
	}))
	flattened := string(mustJSON(map[string]any{"payload": parts[1], "protected": prot, "signature": parts[2]}))

	// A validly signed proof that is just over the size limit.
	oversized := craft(key, h, with(c, "pad", strings.Repeat("A", 9<<10)))

	cases := []struct {
		name   string
		proof  string
		opts   func(*Options)
		want   error  // ErrInvalidProof unless set
		reason string // when set, a substring of the error: the check that must fire
	}{
		{name: "empty", proof: ""},
		{name: "alg none, no signature", proof: enc.EncodeToString(mustJSON(with(h, "alg", "none"))) + "." + parts[1] + "."},
		{name: "alg none, bogus signature", proof: rawJWS(mustJSON(with(h, "alg", "none")), cJSON, func([]byte) []byte { return make([]byte, 64) }), reason: "alg must be ES256"},
		{name: "alg none lower-case ES256", proof: rawJWS(mustJSON(with(h, "alg", "es256")), cJSON, es256(key))},
		{name: "HS256 keyed with the jwk", proof: hs("HS256", 32), reason: "alg must be ES256"},
		{name: "HS512 keyed with the jwk (64-byte MAC)", proof: hs("HS512", 64), reason: "alg must be ES256"},
		{name: "RS256", proof: rs256, reason: "alg must be ES256"},
		{name: "ES384", proof: es384, reason: "alg must be ES256"},
		{name: "EdDSA", proof: eddsa, reason: "alg must be ES256"},
		{name: "typ missing", proof: craft(key, with(h, "typ", nil), c), reason: "typ must be"},
		{name: "typ JWT", proof: craft(key, with(h, "typ", "JWT"), c), reason: "typ must be"},
		{name: "typ application/dpop+jwt", proof: craft(key, with(h, "typ", "application/dpop+jwt"), c)},
		{name: "typ not a string", proof: craft(key, with(h, "typ", 1), c)},
		{name: "jwk missing", proof: craft(key, with(h, "jwk", nil), c), reason: "jwk header is missing"},
		{name: "kid only", proof: craft(key, with(h, "jwk", nil, "kid", Thumbprint(&key.PublicKey)), c), reason: "kid is not allowed"},
		{name: "kid next to jwk", proof: craft(key, with(h, "kid", "k1"), c)},
		{name: "jku", proof: craft(key, with(h, "jwk", nil, "jku", "https://evil.example/jwks"), c), reason: "jku is not allowed"},
		{name: "x5u only", proof: craft(key, with(h, "jwk", nil, "x5u", "https://evil.example/cert"), c), reason: "x5u is not allowed"},
		{name: "x5c", proof: craft(key, with(h, "x5c", []string{"MIIB"}), c)},
		{name: "crit", proof: craft(key, with(h, "crit", []string{"exp"}, "exp", 1), c), reason: "crit is not allowed"},
		{name: "b64 false", proof: craft(key, with(h, "b64", false, "crit", []string{"b64"}), c)},
		{name: "jwk with d", proof: craft(key, with(h, "jwk", withD), c), reason: "private key material"},
		{name: "jwk on P-384", proof: craft(key, with(h, "jwk", publicJWK(&p384.PublicKey)), c), reason: "crv must be P-256"},
		{name: "jwk RSA with ES256", proof: craft(key, with(h, "jwk", map[string]any{"kty": "RSA", "n": "AQAB", "e": "AQAB"}), c)},
		{name: "jwk oct", proof: craft(key, with(h, "jwk", map[string]any{"kty": "oct", "k": "c2VjcmV0"}), c)},
		{name: "jwk point not on curve", proof: craft(key, with(h, "jwk", offCurve), c), reason: "not a point on P-256"},
		{name: "jwk short x", proof: craft(key, with(h, "jwk", with(publicJWK(&key.PublicKey), "x", "AQAB")), c)},
		{name: "jwk is a string", proof: craft(key, with(h, "jwk", "EC"), c)},
		{name: "signed by another key", proof: craft(other, h, c), reason: "signature does not verify"},
		{name: "tampered payload", proof: parts[0] + "." + enc.EncodeToString(mustJSON(with(c, "htm", "GET"))) + "." + parts[2], reason: "signature does not verify"},
		{name: "tampered signature", proof: parts[0] + "." + parts[1] + "." + enc.EncodeToString(make([]byte, 64))},
		{name: "htm mismatch", proof: craft(key, h, with(c, "htm", "GET")), reason: "htm does not match"},
		{name: "htm case", proof: craft(key, h, with(c, "htm", "post"))},
		{name: "htm missing", proof: craft(key, h, with(c, "htm", nil))},
		{name: "htu with query", proof: craft(key, h, with(c, "htu", testURL+"?a=b")), reason: "query or fragment"},
		{name: "htu with empty query", proof: craft(key, h, with(c, "htu", testURL+"?"))},
		{name: "htu with fragment", proof: craft(key, h, with(c, "htu", testURL+"#f")), reason: "query or fragment"},
		{name: "htu other host", proof: craft(key, h, with(c, "htu", "https://evil.example/oauth2/token")), reason: "htu does not match"},
		{name: "htu other path", proof: craft(key, h, with(c, "htu", "https://auth.bank.example/oauth2/revoke")), reason: "htu does not match"},
		{name: "htu trailing slash", proof: craft(key, h, with(c, "htu", testURL+"/"))},
		{name: "htu other scheme", proof: craft(key, h, with(c, "htu", "http://auth.bank.example/oauth2/token")), reason: "htu does not match"},
		{name: "htu other port", proof: craft(key, h, with(c, "htu", "https://auth.bank.example:8443/oauth2/token"))},
		{name: "htu with userinfo", proof: craft(key, h, with(c, "htu", "https://u:p@auth.bank.example/oauth2/token"))},
		{name: "htu relative", proof: craft(key, h, with(c, "htu", "/oauth2/token"))},
		{name: "htu not a string", proof: craft(key, h, with(c, "htu", []string{testURL}))},
		{name: "iat 10 minutes old", proof: craft(key, h, with(c, "iat", testNow.Add(-10*time.Minute).Unix())), reason: "iat is too old"},
		{name: "iat 10 minutes in the future", proof: craft(key, h, with(c, "iat", testNow.Add(10*time.Minute).Unix())), reason: "iat is in the future"},
		{name: "iat just outside the window", proof: craft(key, h, with(c, "iat", testNow.Add(-61*time.Second).Unix()))},
		{name: "iat string", proof: craft(key, h, with(c, "iat", "1800000000")), reason: "iat is not a number"},
		{name: "iat missing", proof: craft(key, h, with(c, "iat", nil))},
		{name: "iat negative", proof: craft(key, h, with(c, "iat", -1))},
		{name: "iat huge", proof: craft(key, h, with(c, "iat", 1e300))},
		{name: "iat bool", proof: craft(key, h, with(c, "iat", true))},
		{name: "jti missing", proof: craft(key, h, with(c, "jti", nil)), reason: "jti is missing"},
		{name: "jti empty", proof: craft(key, h, with(c, "jti", ""))},
		{name: "jti too long", proof: craft(key, h, with(c, "jti", strings.Repeat("j", 129))), reason: "jti is too long"},
		{name: "jti over a custom limit", proof: craft(key, h, c), opts: func(o *Options) { o.MaxJTILength = 8 }},
		{name: "jti number", proof: craft(key, h, with(c, "jti", 42))},
		{name: "ath missing when a token is given", proof: craft(key, h, with(c, "ath", nil)), reason: "ath is missing"},
		{name: "ath wrong", proof: craft(key, h, with(c, "ath", AccessTokenHash("another token"))), reason: "ath does not match"},
		{name: "ath of the token in plain text", proof: craft(key, h, with(c, "ath", testToken))},
		{name: "ath not a string", proof: craft(key, h, with(c, "ath", 1))},
		{name: "ath present without a token", proof: good, opts: func(o *Options) { o.AccessToken = "" }, reason: "ath is present but no access token"},
		{name: "nonce missing", proof: craft(key, h, with(c, "nonce", nil)), want: ErrUseNonce},
		{name: "nonce wrong", proof: craft(key, h, with(c, "nonce", "old-nonce")), want: ErrUseNonce},
		{name: "nonce not a string", proof: craft(key, h, with(c, "nonce", 7))},
		{name: "nonce not a string even without a nonce func", proof: craft(key, h, with(c, "nonce", 7)), opts: func(o *Options) { o.Nonce = nil }},
		{name: "two signatures (general JSON serialization)", proof: twoSigs, reason: "not a compact JWS"},
		{name: "flattened JSON serialization", proof: flattened},
		{name: "trailing garbage", proof: good + "x", reason: "not canonical"},
		{name: "trailing dot part", proof: good + ".e30"},
		{name: "trailing newline", proof: good + "\n"},
		{name: "embedded newline", proof: parts[0] + "." + parts[1][:10] + "\n" + parts[1][10:] + "." + parts[2]},
		{name: "leading space", proof: " " + good},
		{name: "padded base64", proof: parts[0] + "." + parts[1] + "." + parts[2] + "=="},
		{name: "non-canonical base64 bits", proof: parts[0] + "." + parts[1] + "." + flipLastBits(parts[2])},
		// The signature's first character in the standard alphabet, so the
		// case never depends on whether a random proof holds '-' or '_'.
		{name: "standard base64 alphabet", proof: strings.NewReplacer("-", "+", "_", "/").Replace(parts[0]+"."+parts[1]) + ".+" + parts[2][1:]},
		{name: "9 KiB proof", proof: oversized, reason: "larger than 8 KiB"},
		{name: "claims are an array", proof: rawJWS(hJSON, []byte(`["jti","htm"]`), es256(key)), reason: "claims are not a JSON object"},
		{name: "claims are a string", proof: rawJWS(hJSON, []byte(`"claims"`), es256(key))},
		{name: "claims are null", proof: rawJWS(hJSON, []byte(`null`), es256(key))},
		{name: "claims are two objects", proof: rawJWS(hJSON, append(append([]byte{}, cJSON...), '{', '}'), es256(key))},
		{name: "claims are not JSON", proof: rawJWS(hJSON, []byte(`{"jti":`), es256(key))},
		{name: "duplicate claim", proof: rawJWS(hJSON, []byte(strings.Replace(string(cJSON), `{`, `{"htm":"GET",`, 1)), es256(key)), reason: "duplicate member name"},
		{name: "duplicate header parameter", proof: rawJWS([]byte(strings.Replace(string(hJSON), `{`, `{"alg":"none",`, 1)), cJSON, es256(key))},
		{name: "header not an object", proof: rawJWS([]byte(`[1]`), cJSON, es256(key))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := goodOptions()
			if tc.opts != nil {
				tc.opts(&o)
			}
			want := tc.want
			if want == nil {
				want = ErrInvalidProof
			}
			p, err := Verify(tc.proof, o)
			if err == nil {
				t.Fatalf("Verify accepted a hostile proof: %+v", p)
			}
			if !errors.Is(err, want) {
				t.Fatalf("error %q does not match %v", err, want)
			}
			if want == ErrUseNonce && errors.Is(err, ErrInvalidProof) {
				t.Errorf("nonce error also matches ErrInvalidProof: %v", err)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q, want the reason %q", err, tc.reason)
			}
			assertNoEcho(t, err, tc.proof)
		})
	}
}

// assertNoEcho checks that an error says nothing taken from the request:
// errors get logged and sent to clients, and a proof, a token or a nonce in a
// log is a credential in a log.
func assertNoEcho(t *testing.T, err error, proof string) {
	t.Helper()
	msg := err.Error()
	for _, secret := range []string{testToken, testNonce, "old-nonce", AccessTokenHash(testToken)} {
		if strings.Contains(msg, secret) {
			t.Errorf("error echoes %q: %s", secret, msg)
		}
	}
	for _, part := range strings.FieldsFunc(proof, func(r rune) bool { return r == '.' || r == '"' }) {
		if len(part) >= 12 && strings.Contains(msg, part) {
			t.Errorf("error echoes part of the proof: %s", msg)
		}
	}
}

func flipLastBits(s string) string {
	// 64 bytes encode to 86 characters; the last one carries 4 unused bits.
	b := []byte(s)
	last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", b[len(b)-1])
	b[len(b)-1] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last^1]
	return string(b)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestNonceCallback(t *testing.T) {
	key := newKey(t)
	cause := errors.New("nonce expired")
	var got []string
	o := goodOptions()
	o.Nonce = func(n string) error { got = append(got, n); return cause }
	_, err := Verify(craft(key, goodHeader(key), goodClaims()), o)
	if !errors.Is(err, ErrUseNonce) || !errors.Is(err, cause) {
		t.Fatalf("err = %v, want ErrUseNonce wrapping the callback's error", err)
	}
	if len(got) != 1 || got[0] != testNonce {
		t.Errorf("callback saw %q", got)
	}

	// The nonce callback runs only for an otherwise valid proof: a bad
	// proof gets invalid_dpop_proof, never use_dpop_nonce.
	got = nil
	_, err = Verify(craft(key, goodHeader(key), with(goodClaims(), "htm", "GET")), o)
	if !errors.Is(err, ErrInvalidProof) || len(got) != 0 {
		t.Errorf("err = %v, callback calls = %d", err, len(got))
	}
}

func TestBadOptions(t *testing.T) {
	key := newKey(t)
	proof := craft(key, goodHeader(key), goodClaims())
	for name, o := range map[string]Options{
		"no method":    {URL: testURL},
		"no URL":       {Method: "POST"},
		"relative URL": {Method: "POST", URL: "/oauth2/token"},
		"ftp URL":      {Method: "POST", URL: "ftp://h.example/x"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Verify(proof, o)
			if !errors.Is(err, ErrBadOptions) || errors.Is(err, ErrInvalidProof) {
				t.Errorf("err = %v", err)
			}
		})
	}
}

func TestNewProofRefuses(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewProof(p384, "GET", testURL, "", "", testNow); err == nil {
		t.Error("NewProof accepted a P-384 key")
	}
	if _, err := NewProof(nil, "GET", testURL, "", "", testNow); err == nil {
		t.Error("NewProof accepted a nil key")
	}
	if _, err := NewProof(newKey(t), "", testURL, "", "", testNow); err == nil {
		t.Error("NewProof accepted an empty method")
	}
}

func TestNewProofFreshJTI(t *testing.T) {
	key := newKey(t)
	seen := map[string]bool{}
	for range 100 {
		proof, err := NewProof(key, "GET", testURL, "", "", testNow)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Verify(proof, Options{Method: "GET", URL: testURL, Now: testNow})
		if err != nil {
			t.Fatal(err)
		}
		if seen[p.JTI] {
			t.Fatalf("jti repeated")
		}
		seen[p.JTI] = true
	}
}

// TestThumbprintGolden checks Thumbprint against a canonical JWK built by
// hand, following RFC 7638 §3 to the letter, and against the example of
// RFC 9449 §6.1 (the key of the proof in §4.1 and its cnf.jkt in §6.1).
func TestThumbprintGolden(t *testing.T) {
	const (
		x = "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs"
		y = "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"
		// RFC 9449 §6.1: "cnf":{"jkt":"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}
		rfc9449JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	)
	// The JWK as a client would send it: members in any order, with
	// whitespace and an optional member that the thumbprint must ignore.
	sent := `{ "y": "` + y + `", "use": "sig", "x": "` + x + `", "kty": "EC", "crv": "P-256" }`
	pub, err := parsePublicJWK(json.RawMessage(sent))
	if err != nil {
		t.Fatal(err)
	}

	// RFC 7638 §3.2: required members only, lexicographic order, no
	// whitespace; §3.1: SHA-256 of the UTF-8 bytes; base64url unpadded.
	canonical := `{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`
	sum := sha256.Sum256([]byte(canonical))
	want := base64.RawURLEncoding.EncodeToString(sum[:])

	if got := Thumbprint(pub); got != want {
		t.Errorf("Thumbprint = %s, hand-built canonical JWK gives %s", got, want)
	}
	if want != rfc9449JKT {
		t.Errorf("hand-built thumbprint %s != RFC 9449 example %s", want, rfc9449JKT)
	}
	if Thumbprint(nil) != "" {
		t.Error("Thumbprint(nil) is not empty")
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if Thumbprint(&p384.PublicKey) != "" {
		t.Error("Thumbprint of a P-384 key is not empty")
	}
}

// TestThumbprintLeadingZeros makes sure coordinates are encoded at full
// length (RFC 7518 §6.2.1.2): a key whose x starts with a zero byte must not
// lose it, or the thumbprint would differ from every other implementation's.
func TestThumbprintLeadingZeros(t *testing.T) {
	for i := 0; ; i++ {
		k := newKey(t)
		b := must(k.PublicKey.Bytes())
		if b[1] != 0 {
			// One key in 256 has it: 20,000 keys all without it would take
			// odds of about e^-78, so that means the generator is broken.
			if i > 20000 {
				t.Fatal("no P-256 key with a leading zero byte in x among 20,000")
			}
			continue
		}
		jwk := publicJWK(&k.PublicKey)
		canonical := `{"crv":"P-256","kty":"EC","x":"` + jwk["x"].(string) + `","y":"` + jwk["y"].(string) + `"}`
		sum := sha256.Sum256([]byte(canonical))
		if got, want := Thumbprint(&k.PublicKey), enc.EncodeToString(sum[:]); got != want {
			t.Errorf("Thumbprint = %s, want %s", got, want)
		}
		return
	}
}

func TestAccessTokenHash(t *testing.T) {
	// RFC 9449 §7.1 example: the token "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
	// has ath "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo".
	if got := AccessTokenHash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"); got != "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo" {
		t.Errorf("AccessTokenHash = %s", got)
	}
}

func BenchmarkVerify(b *testing.B) {
	key := newKey(b)
	proof, err := NewProof(key, testMethod, testURL, "", testToken, testNow)
	if err != nil {
		b.Fatal(err)
	}
	o := Options{Method: testMethod, URL: testURL, Now: testNow, AccessToken: testToken}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(proof, o); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
}
