// Package hmackeytest rotates an hmac-secret KeySet under a fake clock, for
// the tests of what authd MACs.
package hmackeytest

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"strongroom.dev/api/keyset"
	"strongroom.dev/services/authd/internal/hmackey"
	"strongroom.dev/services/authd/internal/mounted"
)

// Rotation is a test helper: an hmac-secret KeySet in a temporary
// directory, rewritten as the operator would, and a fake clock. Rings
// mounted from it re-read the file on every use.
type Rotation struct {
	t   testing.TB
	dir string

	mu   sync.Mutex
	now  time.Time
	keys []keyset.Key
}

// NewRotation writes keys (made with keyset.Generate) to a new directory.
func NewRotation(t testing.TB, now time.Time, keys ...keyset.Key) *Rotation {
	t.Helper()
	r := &Rotation{t: t, dir: t.TempDir(), now: now}
	r.Write(keys...)
	return r
}

// Key makes an HS256 key with a window.
func Key(t testing.TB, notBefore, notAfter time.Time) keyset.Key {
	t.Helper()
	priv, kid, err := keyset.Generate(keyset.HS256)
	if err != nil {
		t.Fatal(err)
	}
	return keyset.Key{KID: kid, Algorithm: keyset.HS256, NotBefore: notBefore, NotAfter: notAfter, PrivateKey: priv}
}

// Write replaces keys.json and moves the clock on by a nanosecond: a ring
// looks at its file at most once per instant of its clock.
func (r *Rotation) Write(keys ...keyset.Key) {
	r.t.Helper()
	r.mu.Lock()
	r.keys = append([]keyset.Key(nil), keys...)
	r.now = r.now.Add(time.Nanosecond)
	r.mu.Unlock()
	f := &keyset.File{Purpose: keyset.PurposeHMACSecret, PublishAhead: keyset.Duration(time.Hour),
		ProtectedLifetime: keyset.Duration(24 * time.Hour), Keys: keys}
	b, err := f.Marshal()
	if err != nil {
		r.t.Fatal(err)
	}
	tmp := filepath.Join(r.dir, ".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(r.dir, keyset.FileName)); err != nil {
		r.t.Fatal(err)
	}
}

// Keys returns the keys last written.
func (r *Rotation) Keys() []keyset.Key {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]keyset.Key(nil), r.keys...)
}

// Now is the fake clock.
func (r *Rotation) Now() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.now
}

// Set moves the fake clock.
func (r *Rotation) Set(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.now = now
}

// Ring mounts the directory with the fake clock.
func (r *Rotation) Ring() *hmackey.Ring {
	r.t.Helper()
	ring, err := hmackey.Mount(r.dir, 24*time.Hour, mounted.Options{Now: r.Now, Interval: time.Nanosecond})
	if err != nil {
		r.t.Fatal(err)
	}
	return ring
}
