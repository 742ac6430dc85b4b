package mounted

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"strongroom.dev/services/authd/internal/devmode"
)

// clock is the fake clock the tests move.
type clock struct{ t atomic.Int64 }

func (c *clock) now() time.Time          { return time.Unix(0, c.t.Load()) }
func (c *clock) advance(d time.Duration) { c.t.Add(int64(d)) }

// mount is a directory laid out like a kubelet Secret or ConfigMap volume:
// the files are symlinks through ..data, which an update swaps atomically
// to a new timestamped directory.
type mount struct {
	t   *testing.T
	dir string
	n   int
}

func newMount(t *testing.T, files map[string][]byte) *mount {
	m := &mount{t: t, dir: t.TempDir()}
	m.update(files)
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(m.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func (m *mount) path(name string) string { return filepath.Join(m.dir, name) }

// update writes files into a new directory and swaps ..data to it.
func (m *mount) update(files map[string][]byte) {
	m.t.Helper()
	m.n++
	ts := fmt.Sprintf("..2026_11_27_%03d", m.n)
	if err := os.Mkdir(filepath.Join(m.dir, ts), 0o755); err != nil {
		m.t.Fatal(err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(m.dir, ts, name), b, 0o600); err != nil {
			m.t.Fatal(err)
		}
	}
	tmp := filepath.Join(m.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		m.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(m.dir, "..data")); err != nil {
		m.t.Fatal(err)
	}
}

func certPEM(t *testing.T) (certPEM, keyPEM []byte, pin string) {
	t.Helper()
	c, err := devmode.NewCertificate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(c.TLS.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.TLS.Certificate[0]}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), c.Pin
}

func pinOf(c *tls.Certificate) string { return devmode.Pin(c.Leaf) }

// logBuffer collects warnings.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestCertificateReload(t *testing.T) {
	certA, keyA, pinA := certPEM(t)
	certB, keyB, pinB := certPEM(t)
	m := newMount(t, map[string][]byte{"tls.crt": certA, "tls.key": keyA})
	clk := &clock{}
	var logs logBuffer
	v, err := Certificate(m.path("tls.crt"), m.path("tls.key"), Options{Now: clk.now, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	get := GetCertificate(v)
	served := func() string {
		t.Helper()
		c, err := get(nil)
		if err != nil || c == nil {
			t.Fatalf("GetCertificate: %v", err)
		}
		return pinOf(c)
	}
	if served() != pinA {
		t.Fatal("not the mounted certificate")
	}
	steps := []struct {
		name  string
		files map[string][]byte
		want  string
	}{
		{"a new certificate with the old key (half done)", map[string][]byte{"tls.crt": certB, "tls.key": keyA}, pinA},
		{"garbage", map[string][]byte{"tls.crt": []byte("not PEM"), "tls.key": keyB}, pinA},
		{"empty files", map[string][]byte{"tls.crt": nil, "tls.key": nil}, pinA},
		{"a truncated certificate", map[string][]byte{"tls.crt": certB[:len(certB)/2], "tls.key": keyB}, pinA},
		{"the new pair", map[string][]byte{"tls.crt": certB, "tls.key": keyB}, pinB},
		{"the old pair again", map[string][]byte{"tls.crt": certA, "tls.key": keyA}, pinA},
	}
	prev := pinA
	for _, s := range steps {
		m.update(s.files)
		if got := served(); got != prev {
			t.Fatalf("%s: the files were read again within the interval", s.name)
		}
		clk.advance(DefaultInterval)
		if got := served(); got != s.want {
			t.Fatalf("%s: served %s, want %s", s.name, got, s.want)
		}
		prev = s.want
	}
	if !strings.Contains(logs.String(), "keeping the last good version") {
		t.Fatalf("no warning for unusable files: %s", logs.String())
	}
	if strings.Contains(logs.String(), "PRIVATE KEY") || strings.Contains(logs.String(), string(keyA[30:60])) {
		t.Fatal("key material in the log")
	}
}

func TestCertificateMissingAtStart(t *testing.T) {
	dir := t.TempDir()
	if _, err := Certificate(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), Options{}); err == nil {
		t.Fatal("no error for missing files")
	}
	certA, _, _ := certPEM(t)
	_, keyB, _ := certPEM(t)
	m := newMount(t, map[string][]byte{"tls.crt": certA, "tls.key": keyB})
	if _, err := Certificate(m.path("tls.crt"), m.path("tls.key"), Options{}); err == nil {
		t.Fatal("no error for a certificate with another key")
	}
}

// TestCertificateConcurrentReload: handshakes racing with updates always
// get a whole, matching pair.
func TestCertificateConcurrentReload(t *testing.T) {
	type pair struct{ cert, key []byte }
	var pairs []pair
	for range 3 {
		c, k, _ := certPEM(t)
		pairs = append(pairs, pair{c, k})
	}
	m := newMount(t, map[string][]byte{"tls.crt": pairs[0].cert, "tls.key": pairs[0].key})
	v, err := Certificate(m.path("tls.crt"), m.path("tls.key"), Options{Interval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c := v.Get()
				pub, ok := c.Leaf.PublicKey.(*ecdsa.PublicKey)
				priv, ok2 := c.PrivateKey.(*ecdsa.PrivateKey)
				if !ok || !ok2 || !pub.Equal(&priv.PublicKey) {
					t.Error("a certificate served with another key")
					return
				}
			}
		}()
	}
	for i := range 60 {
		p := pairs[i%len(pairs)]
		m.update(map[string][]byte{"tls.crt": p.cert, "tls.key": p.key})
	}
	close(stop)
	wg.Wait()
}

func signedPinSet(t *testing.T, version int64, pins ...string) []byte {
	t.Helper()
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	var ps []map[string]string
	for _, p := range pins {
		ps = append(ps, map[string]string{"sha256": p, "role": "current"})
	}
	input := enc(map[string]string{"alg": "ES256", "kid": "manifest-1"}) + "." + enc(map[string]any{"version": version, "pins": ps})
	sig := make([]byte, 64)
	_, _ = rand.Read(sig) // authd checks the shape; apps verify the signature
	return []byte(input + "." + base64.RawURLEncoding.EncodeToString(sig))
}

const androidXML = `<pin-set expiration="2027-01-01"><pin digest="SHA-256">AAAA</pin></pin-set>`

func TestPinSetReload(t *testing.T) {
	m := newMount(t, map[string][]byte{PinSetFile: signedPinSet(t, 3, "pinA"), AndroidFile: []byte(androidXML)})
	clk := &clock{}
	v, err := PinSets(m.dir, Options{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Get(); got.Version != 3 || !bytes.Equal(got.Android, []byte(androidXML)) {
		t.Fatalf("pin set = %+v", got)
	}
	good := signedPinSet(t, 4, "pinA", "pinB")
	parts := strings.Split(string(good), ".")
	steps := []struct {
		name    string
		pinset  []byte
		android string
		want    int64
	}{
		{"older version", signedPinSet(t, 2, "pinA"), androidXML, 3},
		{"not a JWS", []byte(`{"version": 9}`), androidXML, 3},
		{"four parts", append(append([]byte{}, good...), ".x"...), androidXML, 3},
		{"alg none", []byte(base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"k"}`)) + "." + parts[1] + "." + parts[2]), androidXML, 3},
		{"no kid", []byte(base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256"}`)) + "." + parts[1] + "." + parts[2]), androidXML, 3},
		{"no pins", signedPinSet(t, 5), androidXML, 3},
		{"short signature", []byte(parts[0] + "." + parts[1] + "." + parts[2][:20]), androidXML, 3},
		{"padded base64", []byte(parts[0] + "=." + parts[1] + "." + parts[2]), androidXML, 3},
		{"broken XML", good, `<pin-set><pin>`, 3},
		{"not XML", good, `pins`, 3},
		{"the new pin set", good, androidXML, 4},
		{"the same version again", signedPinSet(t, 4, "pinA", "pinB"), androidXML, 4},
	}
	for _, s := range steps {
		m.update(map[string][]byte{PinSetFile: s.pinset, AndroidFile: []byte(s.android)})
		clk.advance(DefaultInterval)
		if got := v.Get(); got.Version != s.want {
			t.Fatalf("%s: serving version %d, want %d", s.name, got.Version, s.want)
		}
	}
}

func FuzzPinSetShape(f *testing.F) {
	f.Add([]byte("a.b.c"), []byte(androidXML))
	f.Add([]byte(""), []byte(""))
	f.Fuzz(func(t *testing.T, jws, xmlDoc []byte) {
		ps, err := parsePinSet([][]byte{jws, xmlDoc}, PinSet{Version: 1})
		if err == nil && (ps.Version < 1 || len(ps.JWS) == 0) {
			t.Fatalf("accepted %q as version %d", jws, ps.Version)
		}
	})
}
