// Package challenge is the biometric challenge aggregate: 32 random bytes
// a device's biometric key signs, bound to that device, short-lived and
// good for one grant (CONTRACT.md, Token endpoint). A challenge is its own
// event stream; the grant that uses it appends challenge.consumed with the
// version it read, in the same append that starts its session, so under any
// concurrency and across replicas a challenge yields at most one token.
package challenge

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/eventstore"
)

// Size is the challenge's entropy in bytes.
const Size = 32

// DefaultLifetime is how long a challenge may be answered.
const DefaultLifetime = 60 * time.Second

// idPrefix marks challenge stream ids.
const idPrefix = "chl_"

// New returns a fresh challenge (unpadded base64url of 32 random bytes)
// and the id of its stream.
func New() (value, id string, err error) {
	b := make([]byte, Size)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("challenge: %w", err)
	}
	value = base64.RawURLEncoding.EncodeToString(b)
	return value, idOf(b), nil
}

// ID returns the stream id of a challenge value, and false for anything
// that is not a challenge's shape.
func ID(value string) (string, bool) {
	if len(value) != base64.RawURLEncoding.EncodedLen(Size) {
		return "", false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(value)
	if err != nil || len(b) != Size {
		return "", false
	}
	return idOf(b), true
}

// idOf derives the stream id: a hash, so the log never holds the value an
// assertion must sign, and the server finds a challenge by that value.
func idOf(b []byte) string {
	h := sha256.New()
	h.Write([]byte("strongroom/challenge/v1\x00"))
	h.Write(b)
	return idPrefix + base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// State is a challenge folded from its stream.
type State struct {
	ID, DeviceID, UserID string
	ExpiresAt            time.Time
	Consumed             bool
	Version              int64
}

// Fold builds a challenge's state from its events (nil for none).
func Fold(reg *events.Registry, evs []eventstore.Event) (*State, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	s := &State{}
	for _, ev := range evs {
		if ev.StreamType != events.StreamChallenge {
			return nil, fmt.Errorf("stream %q is a %s stream", ev.StreamID, ev.StreamType)
		}
		p, err := reg.Decode(ev.Type, ev.SchemaVersion, ev.Data)
		if err != nil {
			return nil, fmt.Errorf("challenge %s v%d: %w", ev.StreamID, ev.Version, err)
		}
		switch p := p.(type) {
		case *events.ChallengeIssuedV1:
			*s = State{ID: ev.StreamID, DeviceID: p.DeviceID, UserID: ev.UserID, ExpiresAt: p.ExpiresAt}
		case *events.ChallengeConsumedV1:
			s.Consumed = true
		}
		s.Version = ev.Version
	}
	return s, nil
}

// ErrUnusable covers an unknown, used or expired challenge and one of
// another device alike: one answer for all (challenge_invalid).
var ErrUnusable = errors.New("challenge cannot be used")

// Usable decides whether deviceID may answer the challenge at now.
func (s *State) Usable(deviceID string, now time.Time) error {
	if s == nil || s.Consumed || s.DeviceID != deviceID || !now.Before(s.ExpiresAt) {
		return ErrUnusable
	}
	return nil
}
