package assertion_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"strongroom.dev/services/authd/internal/assertion"
	"strongroom.dev/services/dpop"
)

var (
	testNow  = time.Unix(1_800_000_000, 0).UTC()
	enc      = base64.RawURLEncoding
	expected = assertion.Expect{Issuer: testDevice, Audience: testAudience, Now: testNow}
)

const (
	testDevice   = "dev_01J8Z3K5Q7"
	testAudience = "https://auth.bank.example"
	testNonce    = "k3Q9rX2mVb7YpL0sN4tHfW8cZ1aJ6eUgD5iO3qRyT0w"
	testJTI      = "8a1f7e3c-5b2d-4c9a-9e6f-0d4b3a2c1e7f"
	// testDetails is a valid payment the user confirmed.
	testDetails = `[{"type":"payment","amount":"12.50","currency":"EUR","creditor":{"name":"ACME Ltd","iban":"DE89370400440532013000"}}]`
)

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawJWS assembles a compact JWS from exact header and payload bytes and a
// signer over the signing input, so tests can build assertions no
// well-behaved library would produce.
func rawJWS(header, payload []byte, sign func(input []byte) []byte) string {
	input := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	return input + "." + enc.EncodeToString(sign([]byte(input)))
}

// es256 signs as RFC 7518 §3.4 says: R||S, 32 bytes each, big-endian.
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

// hs256 signs with HMAC-SHA-256 under secret.
func hs256(secret []byte) func([]byte) []byte {
	return func(input []byte) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write(input)
		return m.Sum(nil)
	}
}

// craft signs header and claims, marshalled as JSON, with ES256.
func craft(t testing.TB, key *ecdsa.PrivateKey, header, claims map[string]any) string {
	t.Helper()
	return rawJWS(mustJSON(t, header), mustJSON(t, claims), es256(key))
}

// sign has go-jose sign claims as the app does: ES256, typ Type, and the
// extra headers given as name, value pairs.
func sign(t testing.TB, alg jose.SignatureAlgorithm, key any, claims map[string]any, headers ...any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType(assertion.Type)
	for i := 0; i < len(headers); i += 2 {
		opts = opts.WithHeader(jose.HeaderKey(headers[i].(string)), headers[i+1])
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(mustJSON(t, claims))
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func goodHeader() map[string]any { return map[string]any{"alg": "ES256", "typ": assertion.Type} }

func goodClaims() map[string]any {
	return map[string]any{"iss": testDevice, "aud": testAudience, "nonce": testNonce, "jti": testJTI, "iat": testNow.Unix()}
}

// with is a copy of m with each name set to its value, or removed for nil.
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

// publicJWK is the JWK of an EC public key, as a map tests can tamper with.
func publicJWK(t testing.TB, pub *ecdsa.PublicKey) map[string]any {
	t.Helper()
	b, err := pub.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	size := (len(b) - 1) / 2
	crv := map[int]string{32: "P-256", 48: "P-384", 66: "P-521"}[size]
	return map[string]any{"kty": "EC", "crv": crv, "x": enc.EncodeToString(b[1 : 1+size]), "y": enc.EncodeToString(b[1+size:])}
}

// segments splits a compact JWS and decodes its header and payload.
func segments(t testing.TB, compact string) (header, payload []byte, sig string) {
	t.Helper()
	parts := strings.Split(compact, ".")
	if len(parts) != 3 {
		t.Fatalf("%q is not a compact JWS", compact)
	}
	header, err := enc.DecodeString(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	payload, err = enc.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	return header, payload, parts[2]
}

// replace swaps one segment of a compact JWS for the encoding of b, leaving
// the signature as it was.
func replace(compact string, i int, b []byte) string {
	parts := strings.Split(compact, ".")
	parts[i] = enc.EncodeToString(b)
	return strings.Join(parts, ".")
}

// withLength is a valid assertion of exactly n bytes, padded with a claim
// Verify ignores, so length alone decides the outcome.
func withLength(t *testing.T, key *ecdsa.PrivateKey, n int) string {
	t.Helper()
	// Base64url never ends at a length of 4k+1, so two header lengths are
	// tried.
	for _, h := range []map[string]any{goodHeader(), with(goodHeader(), "kid", "k")} {
		for pad := 0; ; pad++ {
			s := craft(t, key, h, with(goodClaims(), "pad", strings.Repeat("p", pad)))
			if len(s) == n {
				return s
			}
			if len(s) > n {
				break
			}
		}
	}
	t.Fatalf("no assertion of %d bytes", n)
	return ""
}

func TestVerifyAccepts(t *testing.T) {
	key := newKey(t)
	jti256 := strings.Repeat("j", 256)
	cases := []struct {
		name      string
		assertion func(t *testing.T) string
		expect    assertion.Expect
		jti       string
		iat       time.Time
		details   string
	}{
		{"minimal, signed by go-jose", func(t *testing.T) string { return sign(t, jose.ES256, key, goodClaims()) },
			expected, testJTI, testNow, ""},
		{"minimal, crafted", func(t *testing.T) string { return craft(t, key, goodHeader(), goodClaims()) },
			expected, testJTI, testNow, ""},
		{"aud as a one-element array", func(t *testing.T) string {
			return sign(t, jose.ES256, key, with(goodClaims(), "aud", []string{testAudience}))
		}, expected, testJTI, testNow, ""},
		{"with a payment", func(t *testing.T) string {
			return sign(t, jose.ES256, key, with(goodClaims(), "authorization_details", json.RawMessage(testDetails)))
		}, expected, testJTI, testNow, testDetails},
		{"with a payment, pretty-printed", func(t *testing.T) string {
			payload := strings.TrimSuffix(string(mustJSON(t, goodClaims())), "}") +
				`, "authorization_details": ` + strings.ReplaceAll(testDetails, ",", ",\n  ") + "\n}"
			return rawJWS(mustJSON(t, goodHeader()), []byte(payload), es256(key))
		}, expected, testJTI, testNow, testDetails},
		{"with a kid header, by go-jose", func(t *testing.T) string {
			return sign(t, jose.ES256, key, goodClaims(), "kid", "bio-1")
		}, expected, testJTI, testNow, ""},
		{"with a kid header, crafted", func(t *testing.T) string {
			return craft(t, key, with(goodHeader(), "kid", "bio-1"), goodClaims())
		}, expected, testJTI, testNow, ""},
		{"exp in the future", func(t *testing.T) string {
			return sign(t, jose.ES256, key, with(goodClaims(), "exp", testNow.Unix()+1))
		}, expected, testJTI, testNow, ""},
		{"iat exactly 60 s in the past", func(t *testing.T) string {
			return sign(t, jose.ES256, key, with(goodClaims(), "iat", testNow.Unix()-60))
		}, expected, testJTI, testNow.Add(-assertion.Leeway), ""},
		{"iat exactly 60 s in the future", func(t *testing.T) string {
			return sign(t, jose.ES256, key, with(goodClaims(), "iat", testNow.Unix()+60))
		}, expected, testJTI, testNow.Add(assertion.Leeway), ""},
		{"iat with an exponent", func(t *testing.T) string {
			payload := strings.Replace(string(mustJSON(t, goodClaims())), `"iat":1800000000`, `"iat":1.8e9`, 1)
			return rawJWS(mustJSON(t, goodHeader()), []byte(payload), es256(key))
		}, expected, testJTI, testNow, ""},
		{"jti of exactly 256 bytes", func(t *testing.T) string {
			return sign(t, jose.ES256, key, with(goodClaims(), "jti", jti256))
		}, expected, jti256, testNow, ""},
		{"exactly MaxLength", func(t *testing.T) string { return withLength(t, key, assertion.MaxLength) },
			expected, testJTI, testNow, ""},
		{"another clock: iat follows Expect.Now", func(t *testing.T) string {
			return sign(t, jose.ES256, key, with(goodClaims(), "iat", testNow.Unix()+3600))
		}, assertion.Expect{Issuer: testDevice, Audience: testAudience, Now: testNow.Add(time.Hour)}, testJTI, testNow.Add(time.Hour), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			compact := c.assertion(t)
			a, err := assertion.Parse(compact)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if a.Nonce != testNonce {
				t.Fatalf("Parse: Nonce = %q, want %q", a.Nonce, testNonce)
			}
			got, err := a.Verify(&key.PublicKey, c.expect)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got.Issuer != testDevice || got.Nonce != testNonce || got.JTI != c.jti || !got.IssuedAt.Equal(c.iat) {
				t.Fatalf("claims = %+v", got)
			}
			switch {
			case c.details == "" && got.Details != nil:
				t.Fatalf("details %s in an assertion without any", got.Details.Raw)
			case c.details != "" && got.Details == nil:
				t.Fatal("the details are lost")
			case c.details != "":
				if string(got.Details.Raw) != c.details {
					t.Fatalf("details = %s, want %s", got.Details.Raw, c.details)
				}
				if len(got.Details.Payments) != 1 || got.Details.Payments[0].Amount != "12.50" {
					t.Fatalf("payments = %+v", got.Details.Payments)
				}
			}
		})
	}
}

// TestParseRefuses covers what Parse refuses from the header and the
// shape alone, before any key is involved.
func TestParseRefuses(t *testing.T) {
	key := newKey(t)
	good := craft(t, key, goodHeader(), goodClaims())
	hdr, payload, sig := segments(t, good)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pubJWK := publicJWK(t, &key.PublicKey)
	point, err := key.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	// header signs claims with key under header h.
	header := func(h map[string]any) string { return craft(t, key, h, goodClaims()) }
	cases := []struct {
		name      string
		assertion func(t *testing.T) string
	}{
		{"empty", func(*testing.T) string { return "" }},
		{"one byte over MaxLength", func(t *testing.T) string { return withLength(t, key, assertion.MaxLength+1) }},
		{"far over MaxLength", func(*testing.T) string { return good + strings.Repeat("A", 1<<20) }},
		{"two segments", func(*testing.T) string { return good[:strings.LastIndexByte(good, '.')] }},
		{"four segments", func(*testing.T) string { return good + "." + sig }},
		{"five segments (JWE)", func(*testing.T) string { return "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d" }},
		{"only dots", func(*testing.T) string { return ".." }},
		{"JSON serialization", func(*testing.T) string {
			return `{"protected":"` + enc.EncodeToString(hdr) + `","payload":"` + enc.EncodeToString(payload) + `","signature":"` + sig + `"}`
		}},
		{"header not base64url", func(*testing.T) string { return "!!!" + good[strings.IndexByte(good, '.'):] }},
		{"header padded", func(t *testing.T) string {
			for _, kid := range []string{"a", "ab", "abc"} {
				if h := mustJSON(t, with(goodHeader(), "kid", kid)); len(h)%3 != 0 {
					return base64.URLEncoding.EncodeToString(h) + good[strings.IndexByte(good, '.'):]
				}
			}
			t.Fatal("no header to pad")
			return ""
		}},
		{"signature padded", func(t *testing.T) string { return good + "==" }},
		{"header not JSON", func(*testing.T) string { return replace(good, 0, []byte("alg=ES256")) }},
		{"header an array", func(*testing.T) string { return replace(good, 0, []byte(`["ES256"]`)) }},
		{"header with trailing data", func(*testing.T) string { return replace(good, 0, append(append([]byte{}, hdr...), 'x')) }},
		{"signature not base64url", func(*testing.T) string { return good[:strings.LastIndexByte(good, '.')+1] + "!!!" }},
		{"alg none with an empty signature", func(t *testing.T) string {
			return rawJWS(mustJSON(t, with(goodHeader(), "alg", "none")), mustJSON(t, goodClaims()), func([]byte) []byte { return nil })
		}},
		{"alg none with the real signature", func(t *testing.T) string {
			return replace(good, 0, mustJSON(t, with(goodHeader(), "alg", "none")))
		}},
		{"alg None", func(t *testing.T) string { return header(with(goodHeader(), "alg", "None")) }},
		{"alg es256", func(t *testing.T) string { return header(with(goodHeader(), "alg", "es256")) }},
		{"no alg", func(t *testing.T) string { return header(with(goodHeader(), "alg", nil)) }},
		{"HS256 under a random secret", func(t *testing.T) string {
			return sign(t, jose.HS256, []byte("0123456789abcdef0123456789abcdef"), goodClaims())
		}},
		// The classic confusion: the verifier's public key used as an HMAC
		// secret, which an attacker knows.
		{"HS256 under the public key's point", func(t *testing.T) string {
			return rawJWS(mustJSON(t, with(goodHeader(), "alg", "HS256")), mustJSON(t, goodClaims()), hs256(point))
		}},
		{"HS256 under the public key's JWK", func(t *testing.T) string {
			return rawJWS(mustJSON(t, with(goodHeader(), "alg", "HS256")), mustJSON(t, goodClaims()), hs256(mustJSON(t, pubJWK)))
		}},
		{"ES384", func(t *testing.T) string { return sign(t, jose.ES384, p384, goodClaims()) }},
		{"RS256", func(t *testing.T) string { return sign(t, jose.RS256, rsaKey, goodClaims()) }},
		{"PS256", func(t *testing.T) string { return sign(t, jose.PS256, rsaKey, goodClaims()) }},
		{"EdDSA", func(t *testing.T) string { return sign(t, jose.EdDSA, edKey, goodClaims()) }},
		{"typ JWT", func(t *testing.T) string { return header(with(goodHeader(), "typ", "JWT")) }},
		{"typ dpop+jwt", func(t *testing.T) string { return header(with(goodHeader(), "typ", "dpop+jwt")) }},
		{"typ with a prefix", func(t *testing.T) string { return header(with(goodHeader(), "typ", "x"+assertion.Type)) }},
		{"typ empty", func(t *testing.T) string { return header(with(goodHeader(), "typ", "")) }},
		{"typ a number", func(t *testing.T) string { return header(with(goodHeader(), "typ", 1)) }},
		{"typ an array", func(t *testing.T) string { return header(with(goodHeader(), "typ", []string{assertion.Type})) }},
		{"no typ", func(t *testing.T) string { return header(with(goodHeader(), "typ", nil)) }},
		{"no typ, signed by go-jose", func(t *testing.T) string {
			signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, nil)
			if err != nil {
				t.Fatal(err)
			}
			jws, err := signer.Sign(mustJSON(t, goodClaims()))
			if err != nil {
				t.Fatal(err)
			}
			s, err := jws.CompactSerialize()
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		// A header that names or carries a key: the key is the registered
		// one, never one the assertion brings.
		{"jwk header with the signer's own key", func(t *testing.T) string {
			return header(with(goodHeader(), "jwk", pubJWK))
		}},
		{"jwk header, signed by go-jose", func(t *testing.T) string {
			signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
				(&jose.SignerOptions{EmbedJWK: true}).WithType(assertion.Type))
			if err != nil {
				t.Fatal(err)
			}
			jws, err := signer.Sign(mustJSON(t, goodClaims()))
			if err != nil {
				t.Fatal(err)
			}
			s, err := jws.CompactSerialize()
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"jku header", func(t *testing.T) string { return header(with(goodHeader(), "jku", "https://evil.example/jwks")) }},
		{"x5u header", func(t *testing.T) string { return header(with(goodHeader(), "x5u", "https://evil.example/cert")) }},
		{"x5c header", func(t *testing.T) string { return header(with(goodHeader(), "x5c", []string{"MIIB"})) }},
		{"x5t header", func(t *testing.T) string { return header(with(goodHeader(), "x5t", "abc")) }},
		{"crit header", func(t *testing.T) string {
			return header(with(goodHeader(), "crit", []string{"exp"}, "exp", testNow.Unix()+60))
		}},
		{"b64 false", func(t *testing.T) string {
			return header(with(goodHeader(), "b64", false, "crit", []string{"b64"}))
		}},
		{"b64 true alone", func(t *testing.T) string { return header(with(goodHeader(), "b64", true)) }},
		{"cty header", func(t *testing.T) string { return header(with(goodHeader(), "cty", "JWT")) }},
		{"zip header", func(t *testing.T) string { return header(with(goodHeader(), "zip", "DEF")) }},
		{"nonce header", func(t *testing.T) string { return header(with(goodHeader(), "nonce", testNonce)) }},
		{"an unknown header", func(t *testing.T) string { return header(with(goodHeader(), "x", "y")) }},
		{"an unknown header, by go-jose", func(t *testing.T) string { return sign(t, jose.ES256, key, goodClaims(), "x", "y") }},
		{"Kid in another case", func(t *testing.T) string { return header(with(goodHeader(), "Kid", "bio-1")) }},
		{"Typ in another case", func(t *testing.T) string {
			return header(map[string]any{"alg": "ES256", "Typ": assertion.Type})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			compact := c.assertion(t)
			a, err := assertion.Parse(compact)
			if err == nil {
				t.Fatalf("Parse(%.200q) accepted", compact)
			}
			if !errors.Is(err, assertion.ErrInvalid) || errors.Is(err, assertion.ErrDetails) {
				t.Fatalf("Parse: %v, want ErrInvalid alone", err)
			}
			if a != nil {
				t.Fatal("Parse returned an assertion with its error")
			}
		})
	}
}

// TestVerifyRefuses covers assertions Parse lets through (the header is
// right) whose signature or claims are wrong.
func TestVerifyRefuses(t *testing.T) {
	key, other := newKey(t), newKey(t)
	signed := func(claims map[string]any) func(t *testing.T) string {
		return func(t *testing.T) string { return craft(t, key, goodHeader(), claims) }
	}
	// raw signs exact payload bytes with key.
	raw := func(payload string) func(t *testing.T) string {
		return func(t *testing.T) string { return rawJWS(mustJSON(t, goodHeader()), []byte(payload), es256(key)) }
	}
	goodPayload := string(mustJSON(t, goodClaims()))
	withDetails := with(goodClaims(), "authorization_details", json.RawMessage(testDetails))
	now := testNow.Unix()
	cases := []struct {
		name      string
		assertion func(t *testing.T) string
		// details is set when the refusal must also wrap ErrDetails.
		details bool
	}{
		// Signature.
		{"signed by another key", func(t *testing.T) string { return craft(t, other, goodHeader(), goodClaims()) }, false},
		{"signed by another key, by go-jose", func(t *testing.T) string { return sign(t, jose.ES256, other, goodClaims()) }, false},
		{"payload tampered: amount changed", func(t *testing.T) string {
			good := sign(t, jose.ES256, key, withDetails)
			_, payload, _ := segments(t, good)
			return replace(good, 1, []byte(strings.Replace(string(payload), `"12.50"`, `"1250.00"`, 1)))
		}, false},
		{"payload tampered: another nonce", func(t *testing.T) string {
			return replace(craft(t, key, goodHeader(), goodClaims()), 1, mustJSON(t, with(goodClaims(), "nonce", "other")))
		}, false},
		{"payload tampered: whitespace added", func(t *testing.T) string {
			good := craft(t, key, goodHeader(), goodClaims())
			_, payload, _ := segments(t, good)
			return replace(good, 1, append([]byte(" "), payload...))
		}, false},
		{"header tampered: kid added", func(t *testing.T) string {
			return replace(craft(t, key, goodHeader(), goodClaims()), 0, mustJSON(t, with(goodHeader(), "kid", "k")))
		}, false},
		{"header tampered: members reordered", func(t *testing.T) string {
			return replace(craft(t, key, goodHeader(), goodClaims()), 0, []byte(`{"typ":"`+assertion.Type+`","alg":"ES256"}`))
		}, false},
		{"signature empty", func(t *testing.T) string {
			good := craft(t, key, goodHeader(), goodClaims())
			return good[:strings.LastIndexByte(good, '.')+1]
		}, false},
		{"signature truncated", func(t *testing.T) string {
			good := craft(t, key, goodHeader(), goodClaims())
			return good[:len(good)-2]
		}, false},
		{"signature zero", func(t *testing.T) string {
			return rawJWS(mustJSON(t, goodHeader()), mustJSON(t, goodClaims()), func([]byte) []byte { return make([]byte, 64) })
		}, false},
		{"signature ASN.1 DER", func(t *testing.T) string {
			return rawJWS(mustJSON(t, goodHeader()), mustJSON(t, goodClaims()), func(in []byte) []byte {
				h := sha256.Sum256(in)
				der, err := ecdsa.SignASN1(rand.Reader, key, h[:])
				if err != nil {
					t.Fatal(err)
				}
				return der
			})
		}, false},
		// Claims shape.
		{"claims an array", raw(`[` + goodPayload + `]`), false},
		{"claims a string", raw(`"claims"`), false},
		{"claims null", raw(`null`), false},
		{"claims empty", raw(``), false},
		{"claims not JSON", raw(`iss=` + testDevice), false},
		{"claims then another object", raw(goodPayload + `{}`), false},
		{"claims then a letter", raw(goodPayload + `x`), false},
		{"claims then a number", raw(goodPayload + ` 1`), false},
		// json.Decoder.More is false before '}' or ']': the claims must
		// be the whole payload.
		{"claims then a closing brace", raw(goodPayload + `}`), false},
		{"claims then a closing bracket", raw(goodPayload + `]`), false},
		// iss.
		{"iss another device", signed(with(goodClaims(), "iss", "dev_other")), false},
		{"iss in another case", signed(with(goodClaims(), "iss", strings.ToUpper(testDevice))), false},
		{"iss missing", signed(with(goodClaims(), "iss", nil)), false},
		{"iss empty", signed(with(goodClaims(), "iss", "")), false},
		{"iss a number", signed(with(goodClaims(), "iss", 1)), false},
		{"iss an array", signed(with(goodClaims(), "iss", []string{testDevice})), false},
		{"ISS instead of iss", signed(with(goodClaims(), "iss", nil, "ISS", testDevice)), false},
		// aud.
		{"aud another server", signed(with(goodClaims(), "aud", "https://other.example")), false},
		{"aud with a trailing slash", signed(with(goodClaims(), "aud", testAudience+"/")), false},
		{"aud array with two values", signed(with(goodClaims(), "aud", []string{testAudience, "https://other.example"})), false},
		{"aud array with the issuer twice", signed(with(goodClaims(), "aud", []string{testAudience, testAudience})), false},
		{"aud empty array", signed(with(goodClaims(), "aud", []string{})), false},
		{"aud array of another server", signed(with(goodClaims(), "aud", []string{"https://other.example"})), false},
		{"aud missing", signed(with(goodClaims(), "aud", nil)), false},
		{"aud empty", signed(with(goodClaims(), "aud", "")), false},
		{"aud null", raw(strings.Replace(goodPayload, `"aud":"`+testAudience+`"`, `"aud":null`, 1)), false},
		{"aud a number", signed(with(goodClaims(), "aud", 1)), false},
		{"aud an object", signed(with(goodClaims(), "aud", map[string]any{"aud": testAudience})), false},
		// nonce.
		{"nonce missing", signed(with(goodClaims(), "nonce", nil)), false},
		{"nonce empty", signed(with(goodClaims(), "nonce", "")), false},
		{"nonce a number", signed(with(goodClaims(), "nonce", 42)), false},
		{"nonce an array", signed(with(goodClaims(), "nonce", []string{testNonce})), false},
		{"nonce null", raw(strings.Replace(goodPayload, `"nonce":"`+testNonce+`"`, `"nonce":null`, 1)), false},
		{"NONCE instead of nonce", signed(with(goodClaims(), "nonce", nil, "NONCE", testNonce)), false},
		// jti.
		{"jti missing", signed(with(goodClaims(), "jti", nil)), false},
		{"jti empty", signed(with(goodClaims(), "jti", "")), false},
		{"jti of 257 bytes", signed(with(goodClaims(), "jti", strings.Repeat("j", 257))), false},
		{"jti a number", signed(with(goodClaims(), "jti", 7)), false},
		// iat.
		{"iat missing", signed(with(goodClaims(), "iat", nil)), false},
		{"iat a string", signed(with(goodClaims(), "iat", "1800000000")), false},
		{"iat null", raw(strings.Replace(goodPayload, `"iat":1800000000`, `"iat":null`, 1)), false},
		{"iat 61 s in the past", signed(with(goodClaims(), "iat", now-61)), false},
		{"iat 61 s in the future", signed(with(goodClaims(), "iat", now+61)), false},
		{"iat a day in the past", signed(with(goodClaims(), "iat", now-86400)), false},
		{"iat zero", signed(with(goodClaims(), "iat", 0)), false},
		{"iat negative", signed(with(goodClaims(), "iat", -1)), false},
		{"iat beyond 1e11", signed(with(goodClaims(), "iat", 1e11+1)), false},
		{"iat huge", raw(strings.Replace(goodPayload, `"iat":1800000000`, `"iat":1e400`, 1)), false},
		{"iat in milliseconds", signed(with(goodClaims(), "iat", now*1000)), false},
		// exp.
		{"exp passed", signed(with(goodClaims(), "exp", now-1)), false},
		{"exp now", signed(with(goodClaims(), "exp", now)), false},
		{"exp a string", signed(with(goodClaims(), "exp", "1800000060")), false},
		{"exp negative", signed(with(goodClaims(), "exp", -1)), false},
		// authorization_details.
		{"details of an unknown type", signed(with(goodClaims(), "authorization_details",
			json.RawMessage(`[{"type":"account_information","actions":["read"]}]`))), true},
		{"details with a zero amount", signed(with(goodClaims(), "authorization_details",
			json.RawMessage(strings.Replace(testDetails, `"12.50"`, `"0"`, 1)))), true},
		{"details with the amount a number", signed(with(goodClaims(), "authorization_details",
			json.RawMessage(strings.Replace(testDetails, `"12.50"`, `12.5`, 1)))), true},
		{"details with the amount twice", signed(with(goodClaims(), "authorization_details",
			json.RawMessage(strings.Replace(testDetails, `"amount":"12.50"`, `"amount":"1","amount":"12.50"`, 1)))), true},
		{"details an object", signed(with(goodClaims(), "authorization_details",
			json.RawMessage(strings.Trim(testDetails, "[]")))), true},
		{"details empty", signed(with(goodClaims(), "authorization_details", json.RawMessage(`[]`))), true},
		{"details null", raw(strings.TrimSuffix(goodPayload, "}") + `,"authorization_details":null}`), true},
		{"details a string", signed(with(goodClaims(), "authorization_details", testDetails)), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			compact := c.assertion(t)
			a, err := assertion.Parse(compact)
			if err != nil {
				t.Fatalf("Parse refused what Verify must refuse: %v", err)
			}
			got, err := a.Verify(&key.PublicKey, expected)
			if err == nil {
				t.Fatalf("Verify accepted: %+v", got)
			}
			if got != nil {
				t.Fatal("Verify returned claims with its error")
			}
			if !errors.Is(err, assertion.ErrInvalid) {
				t.Fatalf("Verify: %v does not wrap ErrInvalid", err)
			}
			if errors.Is(err, assertion.ErrDetails) != c.details {
				t.Fatalf("Verify: %v: wraps ErrDetails %v, want %v", err, !c.details, c.details)
			}
		})
	}
}

// TestVerifyExpect checks each field of Expect is used: an assertion right
// for one device, server and time is refused for another.
func TestVerifyExpect(t *testing.T) {
	key := newKey(t)
	compact := craft(t, key, goodHeader(), goodClaims())
	cases := []struct {
		name string
		key  *ecdsa.PublicKey
		e    assertion.Expect
	}{
		{"no key", nil, expected},
		{"another key", &newKey(t).PublicKey, expected},
		{"another device", &key.PublicKey, assertion.Expect{Issuer: "dev_other", Audience: testAudience, Now: testNow}},
		{"no device", &key.PublicKey, assertion.Expect{Audience: testAudience, Now: testNow}},
		{"another server", &key.PublicKey, assertion.Expect{Issuer: testDevice, Audience: "https://other.example", Now: testNow}},
		{"61 s later", &key.PublicKey, assertion.Expect{Issuer: testDevice, Audience: testAudience, Now: testNow.Add(61 * time.Second)}},
		{"61 s earlier", &key.PublicKey, assertion.Expect{Issuer: testDevice, Audience: testAudience, Now: testNow.Add(-61 * time.Second)}},
		{"no clock", &key.PublicKey, assertion.Expect{Issuer: testDevice, Audience: testAudience}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := assertion.Parse(compact)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := a.Verify(c.key, c.e); !errors.Is(err, assertion.ErrInvalid) || got != nil {
				t.Fatalf("Verify = %+v, %v; want ErrInvalid", got, err)
			}
		})
	}
	// The same assertion with the right key and Expect: the refusals above
	// are Expect's doing.
	a, err := assertion.Parse(compact)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(&key.PublicKey, expected); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyTwice checks an Assertion can be verified more than once, and
// against a wrong key first, with the same outcome.
func TestVerifyTwice(t *testing.T) {
	key := newKey(t)
	a, err := assertion.Parse(craft(t, key, goodHeader(), goodClaims()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(&newKey(t).PublicKey, expected); !errors.Is(err, assertion.ErrInvalid) {
		t.Fatalf("another key: %v", err)
	}
	for i := range 2 {
		if _, err := a.Verify(&key.PublicKey, expected); err != nil {
			t.Fatalf("verification %d: %v", i, err)
		}
	}
}

// TestParseNonce checks Parse exposes the payload's nonce, unverified, to
// select the challenge, and the empty string when there is none.
func TestParseNonce(t *testing.T) {
	key, other := newKey(t), newKey(t)
	cases := []struct {
		name      string
		assertion string
		want      string
	}{
		{"the nonce", craft(t, key, goodHeader(), goodClaims()), testNonce},
		{"another nonce", craft(t, key, goodHeader(), with(goodClaims(), "nonce", "n-2")), "n-2"},
		// Unverified: a wrong signature does not hide the claim.
		{"signed by another key", craft(t, other, goodHeader(), with(goodClaims(), "nonce", "n-3")), "n-3"},
		{"no nonce", craft(t, key, goodHeader(), with(goodClaims(), "nonce", nil)), ""},
		{"nonce a number", craft(t, key, goodHeader(), with(goodClaims(), "nonce", 5)), ""},
		{"claims an array", rawJWS(mustJSON(t, goodHeader()), []byte(`["nonce"]`), es256(key)), ""},
		{"claims not JSON", rawJWS(mustJSON(t, goodHeader()), []byte(`nonce`), es256(key)), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := assertion.Parse(c.assertion)
			if err != nil {
				t.Fatal(err)
			}
			if a.Nonce != c.want {
				t.Fatalf("Nonce = %q, want %q", a.Nonce, c.want)
			}
		})
	}
}

// TestParseNonceIsTheVerifiedNonce checks the nonce Parse exposes is the
// one Verify checks, for a payload that spells the claim twice.
func TestParseNonceIsTheVerifiedNonce(t *testing.T) {
	key := newKey(t)
	payload := strings.TrimSuffix(string(mustJSON(t, goodClaims())), "}") + `,"Nonce":"other"}`
	a, err := assertion.Parse(rawJWS(mustJSON(t, goodHeader()), []byte(payload), es256(key)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.Verify(&key.PublicKey, expected)
	if err != nil {
		t.Fatal(err)
	}
	if a.Nonce != c.Nonce {
		t.Fatalf("Parse says nonce %q, Verify %q", a.Nonce, c.Nonce)
	}
}

func TestParseKey(t *testing.T) {
	key := newKey(t)
	jwk := publicJWK(t, &key.PublicKey)
	cases := []struct {
		name string
		raw  []byte
	}{
		{"a public P-256 JWK", mustJSON(t, jwk)},
		{"with kid, use and alg", mustJSON(t, with(jwk, "kid", "bio-1", "use", "sig", "alg", "ES256"))},
		{"with an unknown member", mustJSON(t, with(jwk, "ext", true))},
		{"pretty-printed", []byte("{\n  \"kty\": \"EC\",\n  \"crv\": \"P-256\",\n  \"x\": \"" + jwk["x"].(string) +
			"\",\n  \"y\": \"" + jwk["y"].(string) + "\"\n}\n")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k, err := assertion.ParseKey(c.raw)
			if err != nil {
				t.Fatalf("ParseKey(%s): %v", c.raw, err)
			}
			checkKey(t, k, &key.PublicKey)
			// What is recorded rebuilds the same key.
			again, err := assertion.KeyFromJWK(k.JWK)
			if err != nil {
				t.Fatalf("KeyFromJWK: %v", err)
			}
			checkKey(t, again, &key.PublicKey)
		})
	}
}

// checkKey checks k is want, with its RFC 7638 thumbprint and its
// canonical public JWK.
func checkKey(t *testing.T, k *assertion.Key, want *ecdsa.PublicKey) {
	t.Helper()
	if !k.Public.Equal(want) {
		t.Fatal("another public key")
	}
	if k.JKT == "" || k.JKT != dpop.Thumbprint(want) {
		t.Fatalf("JKT = %q, want %q", k.JKT, dpop.Thumbprint(want))
	}
	if !reflect.DeepEqual(k.JWK, publicJWK(t, want)) {
		t.Fatalf("JWK = %v, want exactly kty, crv, x and y: %v", k.JWK, publicJWK(t, want))
	}
}

func TestParseKeyRefuses(t *testing.T) {
	key := newKey(t)
	jwk := publicJWK(t, &key.PublicKey)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	marshal := func(k any) []byte {
		b, err := jose.JSONWebKey{Key: k}.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	d, err := key.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	// offCurve is the key's point with y changed: no longer on P-256.
	y, _ := enc.DecodeString(jwk["y"].(string))
	y[31] ^= 1
	cases := []struct {
		name string
		raw  []byte
	}{
		{"empty", nil},
		{"over 4 KiB", append(mustJSON(t, jwk), []byte(strings.Repeat(" ", 4<<10))...)},
		{"garbage", []byte("not a key")},
		{"null", []byte("null")},
		{"an array", mustJSON(t, []any{jwk})},
		{"a string", []byte(`"EC"`)},
		{"an empty object", []byte(`{}`)},
		{"trailing data", append(mustJSON(t, jwk), 'x')},
		{"a private P-256 JWK", marshal(key)},
		{"a public JWK with d added", mustJSON(t, with(jwk, "d", enc.EncodeToString(d)))},
		{"a public JWK with d empty", mustJSON(t, with(jwk, "d", ""))},
		{"a public JWK with d null", []byte(strings.TrimSuffix(string(mustJSON(t, jwk)), "}") + `,"d":null}`)},
		{"P-384", marshal(&p384.PublicKey)},
		{"P-521", marshal(&p521.PublicKey)},
		{"P-256 coordinates labelled P-384", mustJSON(t, with(jwk, "crv", "P-384"))},
		{"RSA", marshal(&rsaKey.PublicKey)},
		{"Ed25519", marshal(edPub)},
		{"oct", marshal([]byte("0123456789abcdef0123456789abcdef"))},
		{"no kty", mustJSON(t, with(jwk, "kty", nil))},
		{"no crv", mustJSON(t, with(jwk, "crv", nil))},
		{"no x", mustJSON(t, with(jwk, "x", nil))},
		{"no y", mustJSON(t, with(jwk, "y", nil))},
		{"x a number", mustJSON(t, with(jwk, "x", 1))},
		{"x not base64url", mustJSON(t, with(jwk, "x", "!!!"))},
		{"x short", mustJSON(t, with(jwk, "x", enc.EncodeToString([]byte{1, 2, 3})))},
		{"point not on the curve", mustJSON(t, with(jwk, "y", enc.EncodeToString(y)))},
		{"kty oct with EC members", mustJSON(t, with(jwk, "kty", "oct"))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k, err := assertion.ParseKey(c.raw)
			if err == nil {
				t.Fatalf("ParseKey(%.200s) accepted", c.raw)
			}
			if !errors.Is(err, assertion.ErrKey) {
				t.Fatalf("ParseKey: %v does not wrap ErrKey", err)
			}
			if k != nil {
				t.Fatal("a key with the error")
			}
		})
	}
}

func TestKeyFromJWKRefuses(t *testing.T) {
	key := newKey(t)
	jwk := publicJWK(t, &key.PublicKey)
	d, err := key.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		jwk  map[string]any
	}{
		{"nil", nil},
		{"empty", map[string]any{}},
		{"with d", with(jwk, "d", enc.EncodeToString(d))},
		{"not marshallable", with(jwk, "x", func() {})},
		{"another curve", with(jwk, "crv", "P-384")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if k, err := assertion.KeyFromJWK(c.jwk); !errors.Is(err, assertion.ErrKey) || k != nil {
				t.Fatalf("KeyFromJWK = %v, %v; want ErrKey", k, err)
			}
		})
	}
}
