package es256

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"io"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

func TestSignVerify(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, err := Signer(key, "k1")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: s}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 50 { // r and s with leading zero bytes come up too
		obj, err := signer.Sign([]byte("payload"))
		if err != nil {
			t.Fatal(err)
		}
		compact, _ := obj.CompactSerialize()
		parsed, err := jose.ParseSignedCompact(compact, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		if out, err := parsed.Verify(&key.PublicKey); err != nil || string(out) != "payload" {
			t.Fatalf("verify: %q, %v", out, err)
		}
	}
}

// badSigner returns a fixed "signature".
type badSigner struct {
	pub crypto.PublicKey
	der []byte
}

func (b badSigner) Public() crypto.PublicKey { return b.pub }
func (b badSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return b.der, nil
}

func TestRefuses(t *testing.T) {
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, k := range map[string]crypto.Signer{"P-384": p384, "RSA": rsaKey} {
		if _, err := Signer(k, "k"); err == nil {
			t.Errorf("%s key accepted", name)
		}
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, der := range map[string][]byte{
		"not ASN.1":      []byte("garbage"),
		"trailing bytes": append(mustSign(t, p256), 0),
		"oversized r":    {0x30, 0x27, 0x02, 0x21, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x02, 0x01, 0x01},
		"empty sequence": {0x30, 0x00},
	} {
		s, err := Signer(badSigner{pub: &p256.PublicKey, der: der}, "k")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.SignPayload([]byte("x"), jose.ES256); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	s, _ := Signer(p256, "k")
	if _, err := s.SignPayload([]byte("x"), jose.RS256); err == nil {
		t.Error("RS256 accepted")
	}
}

func mustSign(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := ecdsa.SignASN1(rand.Reader, k, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	return der
}
