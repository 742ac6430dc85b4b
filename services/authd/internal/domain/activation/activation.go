// Package activation is the activation-code aggregate and the codes
// themselves: ≥ 128-bit random, purpose-bound, single use, expiring, and
// known to the server only as a keyed HMAC-SHA-256 (CONTRACT.md, Enrollment).
package activation

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/hmackey"
)

// Purposes of a code.
const (
	Enroll = "enroll"
	Reset  = "reset"
)

// CodeBytes is the entropy of a code: 160 bits, above the contract's 128.
const CodeBytes = 20

// codeEncoding is RFC 4648 base32 without padding: 32 characters, upper
// case letters and digits 2–7, easy to read aloud or put in a QR code.
var codeEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Codes makes codes and finds their streams. The HMAC keys are the same on
// every replica and rotate (the hmac-secret KeySet): a code's stream id is
// its HMAC under the key active when it was issued, and a code is looked up
// under every key not yet retired, so a rotation never breaks a code that
// has not expired.
type Codes struct{ keys *hmackey.Ring }

// NewCodes returns a code source over a key ring.
func NewCodes(keys *hmackey.Ring) (*Codes, error) {
	if keys == nil {
		return nil, errors.New("activation codes need an HMAC key ring")
	}
	return &Codes{keys: keys}, nil
}

// New returns a fresh code, the id of its stream and the id of the key
// that made it.
func (c *Codes) New() (code, streamID, keyID string, err error) {
	k, err := c.keys.Active()
	if err != nil {
		return "", "", "", fmt.Errorf("generate activation code: %w", err)
	}
	b := make([]byte, CodeBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", "", fmt.Errorf("generate activation code: %w", err)
	}
	return codeEncoding.EncodeToString(b), streamOf(k, b), k.KID, nil
}

// StreamIDs returns the streams a code may have, as typed by a person or
// scanned (case, spaces and dashes do not matter): one per key not yet
// retired, the active key's first. ok is false for anything that cannot be
// a code, which then answers like an unknown one.
func (c *Codes) StreamIDs(code string) (ids []string, ok bool) {
	raw, ok := decode(code)
	if !ok {
		return nil, false
	}
	for _, k := range c.keys.Verifying() {
		ids = append(ids, streamOf(k, raw))
	}
	return ids, true
}

func decode(code string) ([]byte, bool) {
	if len(code) > 64 {
		return nil, false
	}
	norm := strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(code))
	if len(norm) != codeEncoding.EncodedLen(CodeBytes) {
		return nil, false // one spelling per code: no extra or missing characters
	}
	raw, err := codeEncoding.DecodeString(norm)
	if err != nil || len(raw) != CodeBytes {
		return nil, false
	}
	return raw, true
}

func streamOf(k *hmackey.Key, raw []byte) string {
	m := k.New()
	m.Write([]byte("strongroom/activation/v1\x00"))
	m.Write(raw)
	return "activation-" + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// State is an activation code folded from its stream.
type State struct {
	ID        string
	UserID    string
	Purpose   string
	ExpiresAt time.Time
	Consumed  bool
	Version   int64
}

// Fold builds a code's state from its events.
func Fold(reg *events.Registry, evs []eventstore.Event) (*State, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	s := &State{}
	for _, ev := range evs {
		if ev.StreamType != events.StreamActivation {
			return nil, fmt.Errorf("stream %q is a %s stream", ev.StreamID, ev.StreamType)
		}
		p, err := reg.Decode(ev.Type, ev.SchemaVersion, ev.Data)
		if err != nil {
			return nil, fmt.Errorf("activation v%d: %w", ev.Version, err)
		}
		switch p := p.(type) {
		case *events.ActivationIssuedV1:
			s.ID, s.UserID, s.Purpose, s.ExpiresAt = ev.StreamID, p.UserID, p.Purpose, p.ExpiresAt
		case *events.ActivationConsumedV1:
			s.Consumed = true
		}
		s.Version = ev.Version
	}
	return s, nil
}

// Usable reports whether the code may be used now for purpose. Unknown,
// used, expired and wrong-purpose codes are all simply unusable: callers
// answer them alike.
func (s *State) Usable(now time.Time, purpose string) bool {
	return s != nil && !s.Consumed && s.Purpose == purpose && now.Before(s.ExpiresAt)
}
