package service

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"strongroom.dev/api/keyset"
	"strongroom.dev/services/authd/internal/hmackey"
	"strongroom.dev/services/authd/internal/keys"
	"strongroom.dev/services/authd/internal/mounted"
	"strongroom.dev/services/authd/internal/sealing"
)

// BenchmarkKeySetLoad50 is what a replica pays when the operator changes
// a KeySet: reading, checking (every kid derived again from its key) and
// preparing a keys.json of 50 published keys. It happens once per change
// of the Secret, never per request.
func BenchmarkKeySetLoad50(b *testing.B) {
	now := time.Now()
	for _, c := range []struct {
		name, purpose, alg string
		load               func(dir string) error
	}{
		{"token-signing-ES256", keyset.PurposeTokenSigning, keyset.ES256, func(dir string) error {
			_, err := keys.Mount(dir, time.Minute, mounted.Options{})
			return err
		}},
		{"payload-sealing-XWing", keyset.PurposePayloadSealing, keyset.XWing, func(dir string) error {
			_, err := sealing.Mount(dir, time.Minute, mounted.Options{})
			return err
		}},
		{"hmac-secret-HS256", keyset.PurposeHMACSecret, keyset.HS256, func(dir string) error {
			_, err := hmackey.Mount(dir, time.Minute, mounted.Options{})
			return err
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			f := &keyset.File{Purpose: c.purpose, PublishAhead: keyset.Duration(time.Hour), ProtectedLifetime: keyset.Duration(time.Hour)}
			for i := range 50 {
				priv, kid, err := keyset.Generate(c.alg)
				if err != nil {
					b.Fatal(err)
				}
				nb := now.Add(time.Duration(i-25) * time.Hour)
				f.Keys = append(f.Keys, keyset.Key{KID: kid, Algorithm: c.alg, NotBefore: nb, NotAfter: nb.Add(48 * time.Hour), PrivateKey: priv})
			}
			raw, err := f.Marshal()
			if err != nil {
				b.Fatal(err)
			}
			dir := b.TempDir()
			if err := os.WriteFile(filepath.Join(dir, keyset.FileName), raw, 0o600); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := c.load(dir); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(raw)), "file-bytes")
		})
	}
}
