package dpop

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
)

// FuzzVerify feeds arbitrary strings to Verify and checks that
//
//   - it never panics;
//   - every error matches ErrInvalidProof or ErrUseNonce (never
//     ErrBadOptions, never something unclassified that a server would turn
//     into a 500);
//   - it succeeds only for a proof whose ES256 signature, checked here
//     independently of go-jose, verifies with the jwk of its own header, and
//     whose returned key and thumbprint are that jwk's.
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
