package keys

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeKey(t *testing.T, dir, name string, curve elliptic.Curve, blockType string) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var der []byte
	if blockType == "EC PRIVATE KEY" {
		der, err = x509.MarshalECPrivateKey(k)
	} else {
		der, err = x509.MarshalPKCS8PrivateKey(k)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	old := writeKey(t, dir, "2026-10.pem", elliptic.P256(), "PRIVATE KEY")
	cur := writeKey(t, dir, "2026-11.pem", elliptic.P256(), "EC PRIVATE KEY")
	src, err := LoadDir(dir, "2026-11.pem")
	if err != nil {
		t.Fatal(err)
	}
	active, _ := src.Active()
	if !active.Public.Equal(&cur.PublicKey) || active.KID != Thumbprint(&cur.PublicKey) {
		t.Fatal("the named key is not the active one")
	}
	if k, ok := src.Lookup(Thumbprint(&old.PublicKey)); !ok || !k.Public.Equal(&old.PublicKey) {
		t.Fatal("the other key is not published")
	}
	if set := JWKS(src); len(set.Keys) != 2 || set.Keys[0].KeyID != active.KID || !set.Keys[0].IsPublic() {
		t.Fatalf("JWKS = %+v", set)
	}
	if _, ok := src.Lookup("no-such-kid"); ok {
		t.Fatal("unknown kid found")
	}
}

func TestLoadDirRefusesBadKeys(t *testing.T) {
	cases := map[string]func(t *testing.T, dir string) string{
		"empty directory": func(t *testing.T, dir string) string { return "" },
		"two keys, none named": func(t *testing.T, dir string) string {
			writeKey(t, dir, "a.pem", elliptic.P256(), "PRIVATE KEY")
			writeKey(t, dir, "b.pem", elliptic.P256(), "PRIVATE KEY")
			return ""
		},
		"active missing": func(t *testing.T, dir string) string {
			writeKey(t, dir, "a.pem", elliptic.P256(), "PRIVATE KEY")
			return "b.pem"
		},
		"P-384": func(t *testing.T, dir string) string {
			writeKey(t, dir, "a.pem", elliptic.P384(), "PRIVATE KEY")
			return ""
		},
		"not PEM": func(t *testing.T, dir string) string {
			_ = os.WriteFile(filepath.Join(dir, "a.pem"), []byte("hello"), 0o600)
			return ""
		},
		"public key": func(t *testing.T, dir string) string {
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
			_ = os.WriteFile(filepath.Join(dir, "a.pem"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600)
			return ""
		},
		"two blocks": func(t *testing.T, dir string) string {
			writeKey(t, dir, "a.pem", elliptic.P256(), "PRIVATE KEY")
			raw, _ := os.ReadFile(filepath.Join(dir, "a.pem"))
			_ = os.WriteFile(filepath.Join(dir, "a.pem"), append(raw, raw...), 0o600)
			return ""
		},
	}
	for name, setup := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			active := setup(t, dir)
			_, err := LoadDir(dir, active)
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), "PRIVATE KEY-----") {
				t.Fatalf("error quotes key material: %v", err)
			}
		})
	}
}
