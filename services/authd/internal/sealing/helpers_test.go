package sealing

import (
	"crypto/hpke"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"strongroom.dev/api/keyset"
)

func mustKDF(t *testing.T, id uint16) hpke.KDF {
	t.Helper()
	k, err := hpke.NewKDF(id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustAEAD(t *testing.T, id uint16) hpke.AEAD {
	t.Helper()
	a, err := hpke.NewAEAD(id)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func newRecipientForTest(enc []byte, k *Key, kdf hpke.KDF, aead hpke.AEAD, info []byte) (*hpke.Recipient, error) {
	return hpke.NewRecipient(enc, k.priv, kdf, aead, info)
}

// clock is the fake clock the tests move; safe for concurrent use.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.set(t)
	return c
}

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// kubeMount is a directory laid out like a kubelet Secret volume:
// keys.json is a symlink through ..data, which update swaps atomically
// to a new directory.
type kubeMount struct {
	t   testing.TB
	dir string
	n   int
}

func newKubeMount(t testing.TB, keysJSON []byte) *kubeMount {
	t.Helper()
	m := &kubeMount{t: t, dir: t.TempDir()}
	m.update(keysJSON)
	if err := os.Symlink(filepath.Join("..data", keyset.FileName), m.path()); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *kubeMount) path() string { return filepath.Join(m.dir, keyset.FileName) }

// update writes a new version the way the kubelet does.
func (m *kubeMount) update(keysJSON []byte) {
	m.t.Helper()
	m.n++
	ts := fmt.Sprintf("..2026_06_01_%03d", m.n)
	if err := os.Mkdir(filepath.Join(m.dir, ts), 0o700); err != nil {
		m.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m.dir, ts, keyset.FileName), keysJSON, 0o600); err != nil {
		m.t.Fatal(err)
	}
	tmp := filepath.Join(m.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		m.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(m.dir, "..data")); err != nil {
		m.t.Fatal(err)
	}
}

// overwrite writes over the current version in place, as a writer that
// is not the kubelet might: a reader can see it half-written.
func (m *kubeMount) overwrite(keysJSON []byte) {
	m.t.Helper()
	if err := os.WriteFile(m.path(), keysJSON, 0o600); err != nil {
		m.t.Fatal(err)
	}
}

// newKeySetKey makes a fresh keys.json key of a sealing algorithm.
func newKeySetKey(t testing.TB, algorithm string, notBefore, notAfter time.Time) keyset.Key {
	t.Helper()
	priv, kid, err := keyset.Generate(algorithm)
	if err != nil {
		t.Fatal(err)
	}
	return keyset.Key{KID: kid, Algorithm: algorithm, NotBefore: notBefore, NotAfter: notAfter, PrivateKey: priv}
}

// sealingSet is a valid payload-sealing keys.json of keys, publishing a
// day ahead and keeping keys an hour.
func sealingSet(t testing.TB, keys ...keyset.Key) []byte {
	t.Helper()
	f := keyset.File{
		Purpose:           keyset.PurposePayloadSealing,
		PublishAhead:      keyset.Duration(24 * time.Hour),
		ProtectedLifetime: keyset.Duration(time.Hour),
		Keys:              keys,
	}
	b, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawJSON marshals v without any check, for hostile keys.json contents.
func rawJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// assertNoSecret fails if msg contains a piece of any secret, in the
// encodings a file or a careless error might use.
func assertNoSecret(t testing.TB, msg string, secrets ...[]byte) {
	t.Helper()
	for _, s := range secrets {
		if len(s) < 8 {
			continue
		}
		for _, enc := range []string{
			b64.EncodeToString(s), base64.StdEncoding.EncodeToString(s), base64.URLEncoding.EncodeToString(s),
			hex.EncodeToString(s), strings.Trim(fmt.Sprint(s[:8]), "[]"),
		} {
			for i := 0; i+8 <= len(enc); i += 8 {
				if strings.Contains(msg, enc[i:i+8]) {
					t.Fatalf("%q contains key material", msg)
				}
			}
		}
	}
}
