package hmackey_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"strongroom.dev/api/keyset"
	"strongroom.dev/services/authd/internal/hmackey"
	"strongroom.dev/services/authd/internal/hmackey/hmackeytest"
	"strongroom.dev/services/authd/internal/mounted"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func kids(ks []*hmackey.Key) string {
	var out []string
	for _, k := range ks {
		out = append(out, k.KID)
	}
	return strings.Join(out, ",")
}

func TestActiveAndVerifying(t *testing.T) {
	old := hmackeytest.Key(t, t0.Add(-2*time.Hour), t0.Add(2*time.Hour)) // active until cur takes over
	cur := hmackeytest.Key(t, t0.Add(-time.Hour), t0.Add(5*time.Hour))   // active now
	next := hmackeytest.Key(t, t0.Add(time.Hour), t0.Add(9*time.Hour))   // published ahead
	gone := hmackeytest.Key(t, t0.Add(-9*time.Hour), t0.Add(-time.Hour)) // retired
	rot := hmackeytest.NewRotation(t, t0, old, next, gone, cur)
	ring := rot.Ring()
	k, err := ring.Active()
	if err != nil || k.KID != cur.KID {
		t.Fatalf("active %v, %v; want %s", k, err, cur.KID)
	}
	if got, want := kids(ring.Verifying()), strings.Join([]string{cur.KID, next.KID, old.KID}, ","); got != want {
		t.Fatalf("verifying %s, want the active key, then newest first, without the retired one: %s", got, want)
	}
	rot.Set(t0.Add(time.Hour))
	if k, _ := ring.Active(); k.KID != next.KID {
		t.Fatal("the next key does not take over at its not_before")
	}
	rot.Set(t0.Add(9 * time.Hour))
	if _, err := ring.Active(); err != hmackey.ErrNoActiveKey {
		t.Fatalf("every key retired: %v", err)
	}
	if len(ring.Verifying()) != 0 {
		t.Fatal("retired keys still verify")
	}
}

func TestMountRefuses(t *testing.T) {
	write := func(f *keyset.File) string {
		t.Helper()
		dir := t.TempDir()
		b, err := f.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, keyset.FileName), b, 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	k := hmackeytest.Key(t, t0, t0.Add(time.Hour))
	priv, kid, _ := keyset.Generate(keyset.ES256)
	for name, f := range map[string]*keyset.File{
		"signing keys": {Purpose: keyset.PurposeTokenSigning, ProtectedLifetime: keyset.Duration(48 * time.Hour),
			Keys: []keyset.Key{{KID: kid, Algorithm: keyset.ES256, NotBefore: t0, NotAfter: t0.Add(time.Hour), PrivateKey: priv}}},
		"kept shorter than a code lives": {Purpose: keyset.PurposeHMACSecret, ProtectedLifetime: keyset.Duration(time.Hour), Keys: []keyset.Key{k}},
	} {
		if _, err := hmackey.Mount(write(f), 24*time.Hour, mounted.Options{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := hmackey.Static("x", make([]byte, 31)); err == nil {
		t.Fatal("a 248-bit secret accepted")
	}
}

func TestKeysNeverPrintTheirSecret(t *testing.T) {
	secret := []byte(strings.Repeat("s3cr3t!!", 4))
	ring, err := hmackey.Static("dev", secret)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ring.Active()
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(f, k); strings.Contains(out, "s3cr3t") || strings.Contains(out, fmt.Sprintf("%x", secret[:8])) {
			t.Fatalf("%s prints the secret: %s", f, out)
		}
	}
}
