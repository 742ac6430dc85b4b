package devmode

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-jose/go-jose/v4"

	"strongroom.dev/api/pinset"
)

// PinSetDir is the directory, in the dev state directory, where dev mode
// writes the pin set it serves (in production the operator's ConfigMap).
const PinSetDir = "pinset"

// ManifestKID is the kid of dev mode's pin-manifest key.
const ManifestKID = "dev-manifest"

// PinSet plays the operator for dev mode: it signs a pin set naming the dev
// certificate's pin with a manifest key generated for this run, writes it
// (pinset.json, android.xml) into dir/pinset, and returns that directory
// and the manifest key's public JWK, which an app under test must hold to
// verify the pin set. The private key lives only in memory.
func PinSet(dir string, cert Certificate, now time.Time) (pinDir, manifestJWK string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("generate dev manifest key: %w", err)
	}
	now = now.UTC().Truncate(time.Second)
	s := pinset.Set{Version: 1, IssuedAt: now, ExpiresAt: cert.NotAfter.UTC(), Pins: []pinset.Pin{
		{SHA256: cert.Pin, Role: "current", NotBefore: cert.TLS.Leaf.NotBefore.UTC(), NotAfter: cert.NotAfter.UTC()},
	}}
	jws, err := pinset.Sign(s, key, ManifestKID)
	if err != nil {
		return "", "", err
	}
	android, err := pinset.Android(s)
	if err != nil {
		return "", "", err
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "strongroom-dev-"); err != nil {
			return "", "", fmt.Errorf("create dev state directory: %w", err)
		}
	}
	pinDir = filepath.Join(dir, PinSetDir)
	if err := os.MkdirAll(pinDir, 0o700); err != nil {
		return "", "", fmt.Errorf("create dev pin set directory: %w", err)
	}
	for name, b := range map[string][]byte{"pinset.json": []byte(jws), "android.xml": android} {
		tmp := filepath.Join(pinDir, "."+name+".tmp")
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			return "", "", fmt.Errorf("write dev pin set: %w", err)
		}
		if err := os.Rename(tmp, filepath.Join(pinDir, name)); err != nil {
			return "", "", fmt.Errorf("write dev pin set: %w", err)
		}
	}
	pub, err := json.Marshal(jose.JSONWebKey{Key: &key.PublicKey, KeyID: ManifestKID, Algorithm: string(jose.ES256), Use: "sig"})
	if err != nil {
		return "", "", err
	}
	return pinDir, string(pub), nil
}
