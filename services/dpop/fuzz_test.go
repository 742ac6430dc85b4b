package dpop

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"reflect"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// FuzzVerify feeds arbitrary strings to Verify and checks that
//
//   - it never panics;
//   - every error matches ErrInvalidProof or ErrUseNonce (never
//     ErrBadOptions, never something unclassified that a server would turn
//     into a 500);
//   - it succeeds only for a proof whose ES256 signature, checked here
//     independently, verifies with the jwk of its own header, and whose
//     returned key and thumbprint are that jwk's;
//   - go-jose, a second JOSE parser, accepts every proof Verify accepts, with
//     the same key and payload: Verify parses the proof once, with its own
//     strict parser, and must never see a proof another library reads
//     differently.
func FuzzVerify(f *testing.F) {
	key := newKey(f)
	h, c := goodHeader(key), goodClaims()
	good := craft(key, h, c)
	parts := strings.Split(good, ".")
	fromLib, err := NewProof(key, testMethod, testURL, testNonce, testToken, testNow)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		good,
		fromLib,
		craft(key, h, with(c, "nonce", nil)),
		craft(key, h, with(c, "htu", "https://AUTH.bank.example:443/oauth2/./token")),
		craft(key, h, with(c, "iat", float64(testNow.Unix())+0.5)),
		craft(key, with(h, "alg", "none"), c),
		craft(key, with(h, "typ", "JWT"), c),
		craft(key, with(h, "kid", "k"), c),
		craft(key, h, with(c, "htm", "GET")),
		craft(key, h, with(c, "iat", "1800000000")),
		parts[0] + "." + parts[1] + ".",
		parts[0] + ".." + parts[2],
		good + "\n",
		`{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`,
		"",
		"...",
		"e30.e30.e30",
	} {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, proof string) {
		for _, o := range []Options{
			goodOptions(),
			{Method: testMethod, URL: testURL, Now: testNow, AccessToken: testToken},
		} {
			p, err := Verify(proof, o)
			if err != nil {
				if p != nil {
					t.Fatalf("both a proof and an error: %v", err)
				}
				if !errors.Is(err, ErrInvalidProof) && !errors.Is(err, ErrUseNonce) {
					t.Fatalf("unclassified error: %v", err)
				}
				continue
			}
			checkIndependently(t, proof, p)
			checkWithJOSE(t, proof, p)
		}
	})
}

// checkWithJOSE verifies an accepted proof with go-jose, restricted to
// ES256, with the key Verify returned.
func checkWithJOSE(t *testing.T, proof string, p *Proof) {
	t.Helper()
	jws, err := jose.ParseSignedCompact(proof, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("go-jose refuses a proof Verify accepted: %v", err)
	}
	if len(jws.Signatures) != 1 {
		t.Fatalf("go-jose sees %d signatures", len(jws.Signatures))
	}
	h := jws.Signatures[0].Header
	if h.JSONWebKey == nil || !h.JSONWebKey.IsPublic() {
		t.Fatalf("go-jose sees no public jwk in a proof Verify accepted")
	}
	if jk, ok := h.JSONWebKey.Key.(*ecdsa.PublicKey); !ok || !jk.Equal(p.Key) {
		t.Fatalf("go-jose sees another jwk than Verify")
	}
	payload, err := jws.Verify(p.Key)
	if err != nil {
		t.Fatalf("go-jose: the signature of a proof Verify accepted does not verify: %v", err)
	}
	want, _ := enc.DecodeString(strings.Split(proof, ".")[1])
	if !bytes.Equal(payload, want) {
		t.Fatalf("go-jose sees another payload")
	}
}

// parseObjectReference is the straightforward form of parseObject, which
// walks the object with json.Decoder tokens: FuzzParseObject holds the
// faster parseObject to it.
func parseObjectReference(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, errNotObject
	}
	m := make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errNotObject
		}
		name, ok := tok.(string)
		if !ok {
			return nil, errNotObject
		}
		if _, dup := m[name]; dup {
			return nil, errDuplicateMember
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, errNotObject
		}
		m[name] = v
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, errNotObject
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errNotObject
	}
	return m, nil
}

// FuzzParseObject checks that parseObject accepts exactly what the
// reference accepts, with the same members, and refuses duplicates the
// reference refuses.
func FuzzParseObject(f *testing.F) {
	for _, seed := range []string{
		`{}`, ` { } `, `{"a":1}`, `{"a":1,"b":{"a":2,"c":[1,{"d":":"}]}}`,
		`{"a":1,"a":2}`, `{"a":1,"\u0061":2}`, `{"a\"":1,"a\\":2}`, `{"a":"x:y","b":"}"}`,
		`{"k":{"x":1,"x":2}}`, `{"\ud800":1,"\udbff":2}`, "{\"\xff\":1,\"\xfe\":2}",
		`null`, `[]`, `{"a":1}x`, `{"a":1}{}`, `{"a":}`, `{"a" 1}`, `{,}`, `"{}"`, ``, ` `,
		`{"a":1}` + "\n", `{"a":[1,2,{"b":3}],"c":"\\"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, gotErr := parseObject(data)
		want, wantErr := parseObjectReference(data)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("parseObject(%q) error %v, reference %v", data, gotErr, wantErr)
		}
		if gotErr != nil {
			if errors.Is(wantErr, errDuplicateMember) && json.Valid(data) && !errors.Is(gotErr, errDuplicateMember) {
				t.Fatalf("parseObject(%q): %v, want a duplicate member", data, gotErr)
			}
			if got != nil {
				t.Fatalf("both members and an error")
			}
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("parseObject(%q) = %q, reference %q", data, got, want)
		}
	})
}

// checkIndependently re-verifies an accepted proof without go-jose and
// without the package's own JWK parser: the signature with crypto/ecdsa over
// the exact signing input, and the key against the header's x and y.
func checkIndependently(t *testing.T, proof string, p *Proof) {
	t.Helper()
	parts := strings.Split(proof, ".")
	if len(parts) != 3 {
		t.Fatalf("accepted a proof with %d parts", len(parts))
	}
	sig, err := enc.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		t.Fatalf("accepted a proof whose signature is not 64 bytes of base64url")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(p.Key, digest[:], r, s) {
		t.Fatalf("accepted a proof whose signature does not verify")
	}
	hdr, err := enc.DecodeString(parts[0])
	if err != nil {
		t.Fatalf("accepted a proof with an undecodable header")
	}
	var header struct {
		Typ string `json:"typ"`
		Alg string `json:"alg"`
		JWK struct {
			X string `json:"x"`
			Y string `json:"y"`
		} `json:"jwk"`
	}
	if err := json.Unmarshal(hdr, &header); err != nil {
		t.Fatalf("accepted a proof whose header is not JSON: %v", err)
	}
	if header.Typ != "dpop+jwt" || header.Alg != "ES256" {
		t.Fatalf("accepted typ %q alg %q", header.Typ, header.Alg)
	}
	point, err := p.Key.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if enc.EncodeToString(point[1:33]) != header.JWK.X || enc.EncodeToString(point[33:]) != header.JWK.Y {
		t.Fatalf("returned key is not the header's jwk")
	}
	if p.JKT != Thumbprint(p.Key) {
		t.Fatalf("JKT is not the key's thumbprint")
	}
}
