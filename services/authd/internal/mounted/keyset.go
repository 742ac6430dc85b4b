package mounted

import (
	"fmt"
	"path/filepath"
	"time"

	"strongroom.dev/api/keyset"
)

// KeySet serves the keys of a mounted KeySet Secret (its keys.json, see
// package keyset), prepared by prepare once per version of the file, so
// users pay for parsing private keys only when the operator changes them.
//
// need is the longest lifetime authd gives anything it makes with a key of
// this purpose (an access token, an activation code): a file whose
// protected_lifetime is shorter promises to drop keys while what they made
// is still in use, and is refused — at start, which then fails, and on
// reload, which keeps the last good keys and logs why. A file of another
// purpose (a mount mix-up) is refused the same way.
func KeySet[T any](dir, purpose string, need time.Duration, prepare func(*keyset.File) (T, error), o Options) (*Value[T], error) {
	return New([]string{filepath.Join(dir, keyset.FileName)}, func(b [][]byte, _ T) (T, error) {
		var zero T
		f, err := keyset.Parse(b[0])
		if err != nil {
			return zero, err
		}
		if f.Purpose != purpose {
			return zero, fmt.Errorf("keys of purpose %q, want %q", f.Purpose, purpose)
		}
		if got := time.Duration(f.ProtectedLifetime); got < need {
			return zero, fmt.Errorf("the KeySet keeps %s keys %v after use, but authd makes what they protect to live %v: raise the KeySet's protectedLifetime and retireAfter", purpose, got, need)
		}
		return prepare(f)
	}, o)
}
