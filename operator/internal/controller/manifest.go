package controller

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"strongroom.dev/api/v1alpha1"
)

// ManifestSigners finds the key that signs a PinnedCertificate's pin set.
// It hands out a crypto.Signer, so an implementation backed by a KMS or an
// HSM fits without the controller knowing.
type ManifestSigners interface {
	// Signer returns the signer of the first manifest key of refs and its
	// kid.
	Signer(ctx context.Context, namespace string, refs []v1alpha1.ManifestKeyRef) (crypto.Signer, string, error)
}

// ManifestKeyData is the data key of a manifest-key Secret.
const ManifestKeyData = "key.pem"

// SecretManifestSigners reads manifest keys from Secrets (key.pem: an
// ECDSA P-256 private key in PEM).
type SecretManifestSigners struct {
	Reader client.Reader
}

// Signer implements ManifestSigners.
func (s SecretManifestSigners) Signer(ctx context.Context, namespace string, refs []v1alpha1.ManifestKeyRef) (crypto.Signer, string, error) {
	if len(refs) == 0 {
		return nil, "", errors.New("no manifest key is named")
	}
	var sec corev1.Secret
	if err := s.Reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: refs[0].SecretName}, &sec); err != nil {
		return nil, "", fmt.Errorf("manifest key Secret %q: %w", refs[0].SecretName, err)
	}
	key, err := decodeKey(sec.Data[ManifestKeyData])
	if err != nil {
		return nil, "", fmt.Errorf("manifest key Secret %q, %s: %w", refs[0].SecretName, ManifestKeyData, err)
	}
	kid, err := ManifestKeyID(key.Public())
	if err != nil {
		return nil, "", fmt.Errorf("manifest key Secret %q: %w", refs[0].SecretName, err)
	}
	return key, kid, nil
}

// ManifestKeyID is the kid of a manifest key: its RFC 7638 JWK thumbprint
// (SHA-256, base64url), which an app can compute from the public key it
// ships. Only ECDSA P-256 keys qualify (the pin set is ES256).
func ManifestKeyID(pub crypto.PublicKey) (string, error) {
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return "", errors.New("a manifest key must be ECDSA P-256")
	}
	sum, err := (&jose.JSONWebKey{Key: ec}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}
