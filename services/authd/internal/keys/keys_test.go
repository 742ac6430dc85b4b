package keys

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"strongroom.dev/api/keyset"
	"strongroom.dev/services/authd/internal/mounted"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func esKey(t *testing.T, nb, na time.Time) keyset.Key {
	t.Helper()
	priv, kid, err := keyset.Generate(keyset.ES256)
	if err != nil {
		t.Fatal(err)
	}
	return keyset.Key{KID: kid, Algorithm: keyset.ES256, NotBefore: nb, NotAfter: na, PrivateKey: priv}
}

func writeSet(t *testing.T, dir string, publishAhead, protected time.Duration, keys ...keyset.Key) {
	t.Helper()
	b, err := (&keyset.File{Purpose: keyset.PurposeTokenSigning, PublishAhead: keyset.Duration(publishAhead),
		ProtectedLifetime: keyset.Duration(protected), Keys: keys}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	writeRaw(t, dir, b)
}

func writeRaw(t *testing.T, dir string, b []byte) {
	t.Helper()
	tmp := filepath.Join(dir, ".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, keyset.FileName)); err != nil {
		t.Fatal(err)
	}
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func kids(ks []*Key) []string {
	var out []string
	for _, k := range ks {
		out = append(out, k.KID)
	}
	return out
}

// TestMountActivatesByTime: two replicas mounting the same KeySet, one
// that reloads at once and one whose last look is long past (as if the
// kubelet had been slow), sign with the same key at every instant across a
// rotation, publish the next key ahead and the old one until it retires.
func TestMountActivatesByTime(t *testing.T) {
	dir := t.TempDir()
	a := esKey(t, t0, t0.Add(3*time.Hour))                  // active 0h..2h, kept to 3h
	b := esKey(t, t0.Add(2*time.Hour), t0.Add(6*time.Hour)) // published at 1h, active from 2h
	writeSet(t, dir, time.Hour, time.Hour, a)
	clk := &clock{now: t0}
	prompt, err := Mount(dir, time.Hour, mounted.Options{Now: clk.Now, Interval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	stale, err := Mount(dir, time.Hour, mounted.Options{Now: clk.Now, Interval: 90 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	replicas := map[string]*Mounted{"prompt": prompt, "stale": stale}
	check := func(at time.Duration, active string, published ...string) {
		t.Helper()
		clk.Set(t0.Add(at))
		for name, src := range replicas {
			k, err := src.Active()
			if err != nil || k.KID != active {
				t.Errorf("at %v, %s replica signs with %v (%v), want %s", at, name, k, err, active)
			}
			if got := kids(src.Published()); strings.Join(got, ",") != strings.Join(published, ",") {
				t.Errorf("at %v, %s replica publishes %v, want %v", at, name, got, published)
			}
			for _, kid := range published {
				if _, ok := src.Lookup(kid); !ok {
					t.Errorf("at %v, %s replica cannot verify with %s", at, name, kid)
				}
			}
		}
	}
	check(0, a.KID, a.KID)
	clk.Set(t0.Add(time.Hour)) // the operator publishes b an hour ahead
	writeSet(t, dir, time.Hour, time.Hour, a, b)
	// The stale replica looks again only at 1h30 (its last look was at 0h):
	// until then it does not publish b, and that is all it misses.
	delete(replicas, "stale")
	check(time.Hour, a.KID, a.KID, b.KID)
	replicas["stale"] = stale
	check(time.Hour+30*time.Minute, a.KID, a.KID, b.KID)
	// From here on the stale replica reads nothing until 3h: it switches
	// by the clock alone.
	check(2*time.Hour-time.Nanosecond, a.KID, a.KID, b.KID)
	check(2*time.Hour, b.KID, b.KID, a.KID) // both switch at the same instant
	check(3*time.Hour, b.KID, b.KID)        // a retired: gone from the JWKS
	if _, ok := prompt.Lookup(a.KID); ok {
		t.Fatal("a retired key still verifies")
	}
	if got := prompt.MaxAge(); got != 5*time.Minute {
		t.Fatalf("MaxAge = %v with an hour published ahead, want the 5 min cap", got)
	}

	// revoke: the operator removes b and activates c at once.
	c := esKey(t, t0.Add(4*time.Hour), t0.Add(9*time.Hour))
	clk.Set(t0.Add(4 * time.Hour))
	writeSet(t, dir, time.Hour, time.Hour, c)
	if k, _ := prompt.Active(); k.KID != c.KID {
		t.Fatal("the revoked key's successor does not sign")
	}
	if _, ok := prompt.Lookup(b.KID); ok {
		t.Fatal("a revoked key still verifies")
	}
	// Nothing in its window: no signing at all rather than a wrong key.
	clk.Set(t0.Add(9 * time.Hour))
	if _, err := prompt.Active(); err != ErrNoActiveKey {
		t.Fatalf("Active with every key retired: %v", err)
	}
}

func TestMaxAgeFollowsPublishAhead(t *testing.T) {
	for _, c := range []struct{ ahead, want time.Duration }{
		{24 * time.Hour, 5 * time.Minute},
		{10 * time.Minute, 5 * time.Minute},
		{20 * time.Second, 10 * time.Second},
		{3 * time.Second, time.Second},
		{0, 0},
	} {
		dir := t.TempDir()
		writeSet(t, dir, c.ahead, time.Hour, esKey(t, t0, t0.Add(time.Hour)))
		src, err := Mount(dir, time.Hour, mounted.Options{Now: func() time.Time { return t0 }})
		if err != nil {
			t.Fatal(err)
		}
		if got := src.MaxAge(); got != c.want {
			t.Errorf("publishAhead %v: MaxAge %v, want %v", c.ahead, got, c.want)
		}
	}
}

// TestMountRefuses: a mount that cannot be used stops authd at start, and
// a bad update keeps the last good keys.
func TestMountRefuses(t *testing.T) {
	good := esKey(t, t0, t0.Add(time.Hour))
	sealingKey := func() []byte {
		priv, kid, _ := keyset.Generate(keyset.XWing)
		b, _ := (&keyset.File{Purpose: keyset.PurposePayloadSealing, ProtectedLifetime: keyset.Duration(time.Hour),
			Keys: []keyset.Key{{KID: kid, Algorithm: keyset.XWing, NotBefore: t0, NotAfter: t0.Add(time.Hour), PrivateKey: priv}}}).Marshal()
		return b
	}
	file := func(protected time.Duration, keys ...keyset.Key) []byte {
		b, err := (&keyset.File{Purpose: keyset.PurposeTokenSigning, ProtectedLifetime: keyset.Duration(protected), Keys: keys}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var wrongKid map[string]any
	_ = json.Unmarshal(file(time.Hour, good), &wrongKid)
	wrongKid["keys"].([]any)[0].(map[string]any)["kid"] = esKey(t, t0, t0.Add(time.Hour)).KID
	wrongKidFile, _ := json.Marshal(wrongKid)
	for name, data := range map[string][]byte{
		"not JSON":                       []byte("-----BEGIN PRIVATE KEY-----"),
		"another purpose":                sealingKey(),
		"protected lifetime too short":   file(30*time.Minute, good),
		"kid of another key":             wrongKidFile,
		"half written":                   file(time.Hour, good)[:100],
		"empty":                          {},
		"private key of another purpose": []byte(strings.Replace(string(file(time.Hour, good)), `"ES256"`, `"HS256"`, 1)),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeRaw(t, dir, data)
			_, err := Mount(dir, time.Hour, mounted.Options{})
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), base64.RawURLEncoding.EncodeToString(good.PrivateKey)[:12]) {
				t.Fatalf("error quotes key material: %v", err)
			}

			// The same content as an update keeps the good keys.
			writeSet(t, dir, time.Hour, time.Hour, good)
			clk := &clock{now: t0}
			src, err := Mount(dir, time.Hour, mounted.Options{Now: clk.Now, Interval: time.Nanosecond})
			if err != nil {
				t.Fatal(err)
			}
			writeRaw(t, dir, data)
			clk.Set(t0.Add(time.Minute))
			if k, err := src.Active(); err != nil || k.KID != good.KID {
				t.Fatalf("a bad update replaced the keys: %v %v", k, err)
			}
		})
	}
	if _, err := Mount(t.TempDir(), time.Hour, mounted.Options{}); err == nil {
		t.Fatal("a missing keys.json accepted")
	}
}

func TestStatic(t *testing.T) {
	k1, _ := Generate()
	k2, _ := Generate()
	src, err := NewStatic(k1, k2, k1)
	if err != nil {
		t.Fatal(err)
	}
	if act, _ := src.Active(); act != k1 {
		t.Fatal("the named key is not the active one")
	}
	if got := kids(src.Published()); len(got) != 2 || got[0] != k1.KID {
		t.Fatalf("published %v", got)
	}
	if set := JWKS(src); len(set.Keys) != 2 || set.Keys[0].KeyID != k1.KID || !set.Keys[0].IsPublic() {
		t.Fatalf("JWKS = %+v", set)
	}
	if _, ok := src.Lookup("no-such-kid"); ok {
		t.Fatal("unknown kid found")
	}
	if _, err := NewStatic(nil); err == nil {
		t.Fatal("no active key accepted")
	}
}
