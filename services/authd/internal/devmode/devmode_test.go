package devmode

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNewCertificate(t *testing.T) {
	now := time.Now()
	c, err := NewCertificate(now)
	if err != nil {
		t.Fatal(err)
	}
	leaf := c.TLS.Leaf
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("public key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if d := leaf.NotAfter.Sub(now); d > CertificateValidity || d < CertificateValidity-time.Minute {
		t.Errorf("valid for %s more, want about %s", d, CertificateValidity)
	}
	if !c.NotAfter.Equal(leaf.NotAfter) {
		t.Errorf("NotAfter %v, leaf says %v", c.NotAfter, leaf.NotAfter)
	}

	// The pin, computed independently from the marshalled public key.
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(spki)
	if want := base64.StdEncoding.EncodeToString(sum[:]); c.Pin != want {
		t.Errorf("Pin = %s, want %s", c.Pin, want)
	}

	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	for _, name := range []string{"127.0.0.1", "::1", "localhost"} {
		t.Run("valid for "+name, func(t *testing.T) {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, CurrentTime: now}); err != nil {
				t.Errorf("verify: %v", err)
			}
		})
	}
	for _, name := range []string{"10.0.0.1", "example.com"} {
		t.Run("not valid for "+name, func(t *testing.T) {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, CurrentTime: now}); err == nil {
				t.Error("verify succeeded")
			}
		})
	}

	other, err := NewCertificate(now)
	if err != nil {
		t.Fatal(err)
	}
	if other.Pin == c.Pin || other.TLS.Leaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("two certificates share a key or a serial")
	}
}

// TestCertificatePinOverTLS pins the certificate in a real handshake, as a
// dev client would, and checks that another certificate fails the pin.
func TestCertificatePinOverTLS(t *testing.T) {
	served, err := NewCertificate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	impostor, err := NewCertificate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		pin     string
		wantErr bool
	}{
		{"matching pin", served.Pin, false},
		{"other key's pin", impostor.Pin, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{served.TLS}})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				conn, err := ln.Accept()
				if err == nil {
					_ = conn.(*tls.Conn).Handshake()
					conn.Close()
				}
			}()
			conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
				InsecureSkipVerify: true, // replaced by the pin check below
				VerifyConnection: func(cs tls.ConnectionState) error {
					if Pin(cs.PeerCertificates[0]) != tt.pin {
						return errors.New("pin mismatch")
					}
					return nil
				},
			})
			if conn != nil {
				conn.Close()
			}
			if (err != nil) != tt.wantErr {
				t.Errorf("dial err = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestAdminSecret(t *testing.T) {
	t.Run("generated into a 0600 file", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "state")
		secret, path, err := AdminSecret("", dir)
		if err != nil {
			t.Fatal(err)
		}
		if path != filepath.Join(dir, AdminSecretFile) {
			t.Errorf("path = %s", path)
		}
		raw, err := base64.RawURLEncoding.DecodeString(secret)
		if err != nil || len(raw) != 32 {
			t.Errorf("secret %q is not 32 bytes of base64url (%v)", secret, err)
		}
		assertPrivateFile(t, path, secret)
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("state dir mode = %v (%v), want 0700", fi.Mode().Perm(), err)
		}

		again, path2, err := AdminSecret("", dir)
		if err != nil {
			t.Fatal(err)
		}
		if again == secret || path2 != path {
			t.Errorf("second start: same secret %v, path %s", again == secret, path2)
		}
		assertPrivateFile(t, path, again)
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Errorf("state dir holds %d entries, want only the secret file", len(entries))
		}
	})

	t.Run("from the environment, no file", func(t *testing.T) {
		dir := t.TempDir()
		secret, path, err := AdminSecret("given-secret-0123456789", dir)
		if err != nil || secret != "given-secret-0123456789" || path != "" {
			t.Fatalf("got %q %q %v", secret, path, err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("wrote %d files", len(entries))
		}
	})

	t.Run("no directory: a new temporary one", func(t *testing.T) {
		secret, path, err := AdminSecret("", "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(filepath.Dir(path)) })
		if !strings.Contains(filepath.Base(filepath.Dir(path)), "strongroom-dev-") {
			t.Errorf("path = %s", path)
		}
		assertPrivateFile(t, path, secret)
	})

	t.Run("a symlink at the path is replaced, not followed", func(t *testing.T) {
		dir := t.TempDir()
		victim := filepath.Join(t.TempDir(), "victim")
		if err := os.WriteFile(victim, []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(victim, filepath.Join(dir, AdminSecretFile)); err != nil {
			t.Fatal(err)
		}
		secret, path, err := AdminSecret("", dir)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(victim); string(b) != "keep" {
			t.Errorf("symlink target overwritten with %q", b)
		}
		assertPrivateFile(t, path, secret)
	})

	t.Run("a directory others can write to is refused", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		_, _, err := AdminSecret("", dir)
		if err == nil || !strings.Contains(err.Error(), "writable by group or others") {
			t.Fatalf("err = %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, AdminSecretFile)); !os.IsNotExist(err) {
			t.Errorf("secret file written anyway (%v)", err)
		}
	})

	t.Run("a file where the directory should be", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := AdminSecret("", f); err == nil {
			t.Fatal("AdminSecret succeeded")
		}
	})
}

func assertPrivateFile(t *testing.T, path, want string) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s mode = %v, want a regular 0600 file", path, fi.Mode())
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != want {
		t.Errorf("%s holds %q (%v), want the secret", path, b, err)
	}
}
