// Package es256 lets go-jose sign ES256 (ECDSA P-256 with SHA-256) through
// a crypto.Signer, so the private key can live in a KMS or an HSM. JOSE
// wants the signature as the raw r||s pair (RFC 7518 §3.4); crypto.Signer
// returns it ASN.1-encoded.
package es256

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"github.com/go-jose/go-jose/v4"
)

// Signer returns a go-jose OpaqueSigner for key, an ECDSA P-256 key, named
// kid.
func Signer(key crypto.Signer, kid string) (jose.OpaqueSigner, error) {
	pub, ok := key.Public().(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, errors.New("es256: the key must be ECDSA P-256")
	}
	return opaque{key: key, pub: pub, kid: kid}, nil
}

type opaque struct {
	key crypto.Signer
	pub *ecdsa.PublicKey
	kid string
}

func (o opaque) Public() *jose.JSONWebKey {
	return &jose.JSONWebKey{Key: o.pub, KeyID: o.kid, Algorithm: string(jose.ES256), Use: "sig"}
}

func (o opaque) Algs() []jose.SignatureAlgorithm { return []jose.SignatureAlgorithm{jose.ES256} }

func (o opaque) SignPayload(payload []byte, alg jose.SignatureAlgorithm) ([]byte, error) {
	if alg != jose.ES256 {
		return nil, fmt.Errorf("es256: algorithm %s not supported", alg)
	}
	digest := sha256.Sum256(payload)
	der, err := o.key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return nil, err
	}
	var sig struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &sig); err != nil || len(rest) != 0 || sig.R == nil || sig.S == nil {
		return nil, errors.New("es256: the signer returned a malformed ECDSA signature")
	}
	if sig.R.BitLen() > 256 || sig.S.BitLen() > 256 {
		return nil, errors.New("es256: the signer returned an oversized ECDSA signature")
	}
	out := make([]byte, 64)
	sig.R.FillBytes(out[:32])
	sig.S.FillBytes(out[32:])
	return out, nil
}
