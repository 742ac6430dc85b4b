package keys

import (
	"fmt"
	"time"

	"strongroom.dev/api/keyset"
	"strongroom.dev/services/authd/internal/mounted"
)

// Mounted is the token-signing KeySet the operator writes into a Secret
// that authd mounts. It implements Source by the clock: the active key is
// the one whose NotBefore is the latest that has passed, so every replica
// switches at the same instant, however long ago each reloaded the file
// (the operator publishes a key publishAhead before its NotBefore, far
// longer than any replica takes to see the change).
type Mounted struct {
	v   *mounted.Value[*set]
	now func() time.Time
}

// set is one version of keys.json, its keys prepared.
type set struct {
	file  *keyset.File
	byKID map[string]*Key
}

// Mount reads the KeySet in dir (dir/keys.json) and keeps it up to date.
// maxTokenLifetime is the longest access-token lifetime authd is
// configured with: a KeySet promising to keep keys for less is refused.
func Mount(dir string, maxTokenLifetime time.Duration, o mounted.Options) (*Mounted, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	v, err := mounted.KeySet(dir, keyset.PurposeTokenSigning, maxTokenLifetime, newSet, o)
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	return &Mounted{v: v, now: o.Now}, nil
}

func newSet(f *keyset.File) (*set, error) {
	s := &set{file: f, byKID: make(map[string]*Key, len(f.Keys))}
	for _, fk := range f.Keys {
		priv, err := keyset.ParseES256(fk.PrivateKey)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", fk.KID, err)
		}
		k, err := FromSigner(priv)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", fk.KID, err)
		}
		k.NotBefore, k.NotAfter = fk.NotBefore, fk.NotAfter
		s.byKID[k.KID] = k
	}
	return s, nil
}

// Active implements Source: the key whose not_before passed last.
func (m *Mounted) Active() (*Key, error) {
	s := m.v.Get()
	if fk, ok := s.file.Active(m.now()); ok {
		return s.byKID[fk.KID], nil
	}
	return nil, ErrNoActiveKey
}

// Lookup implements Source: any key not yet retired, including keys
// published ahead of their window (another replica's clock may be a
// little ahead).
func (m *Mounted) Lookup(kid string) (*Key, bool) {
	k, ok := m.v.Get().byKID[kid]
	if !ok || !k.live(m.now()) {
		return nil, false
	}
	return k, true
}

// Published implements Source: the active key first, then the others not
// retired, newest first.
func (m *Mounted) Published() []*Key {
	s := m.v.Get()
	var out []*Key
	for _, fk := range s.file.Published(m.now()) {
		out = append(out, s.byKID[fk.KID])
	}
	return out
}

// MaxAge implements Source: half the publish-ahead window (at most
// DefaultMaxAge), so a client's cached JWKS always holds the next key
// before it signs, with room for the replicas' reload delay.
func (m *Mounted) MaxAge() time.Duration {
	pa := time.Duration(m.v.Get().file.PublishAhead)
	if pa <= 0 {
		return 0
	}
	return min(DefaultMaxAge, (pa / 2).Truncate(time.Second))
}
