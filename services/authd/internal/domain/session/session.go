// Package session is the session aggregate: a session's state folded from
// its stream, its refresh-token chain, and the refresh decision
// (CONTRACT.md, Token endpoint: rotation that survives mobile networks).
package session

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/eventstore"
)

// State is a session folded from its stream.
type State struct {
	ID, UserID, DeviceID, ClientID, KeyThumbprint string
	ACR                                           string
	AMR                                           []string
	AuthTime                                      time.Time
	Scopes, Audience                              []string
	ExpiresAt, IdleExpiresAt                      time.Time
	// Current is the id of the newest refresh token issued; Previous the
	// id of the token it succeeded (whose successor is Current).
	Current, Previous string
	Revoked           bool
	Version           int64
}

// Fold builds a session's state from its events.
func Fold(reg *events.Registry, evs []eventstore.Event) (*State, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	s := &State{}
	for _, ev := range evs {
		if ev.StreamType != events.StreamSession {
			return nil, fmt.Errorf("stream %q is a %s stream", ev.StreamID, ev.StreamType)
		}
		p, err := reg.Decode(ev.Type, ev.SchemaVersion, ev.Data)
		if err != nil {
			return nil, fmt.Errorf("session v%d: %w", ev.Version, err)
		}
		switch p := p.(type) {
		case *events.SessionStartedV1:
			*s = State{ID: ev.StreamID, UserID: p.UserID, DeviceID: p.DeviceID, ClientID: p.ClientID,
				KeyThumbprint: p.KeyThumbprint, ACR: p.ACR, AMR: p.AMR, AuthTime: p.AuthTime,
				Scopes: p.Scopes, Audience: p.Audience, ExpiresAt: p.ExpiresAt, IdleExpiresAt: p.IdleExpiresAt,
				Current: p.RefreshTokenID}
		case *events.SessionRefreshedV1:
			if !p.Repeat {
				s.Previous, s.Current = p.PreviousTokenID, p.TokenID
			}
			s.IdleExpiresAt = p.IdleExpiresAt
		case *events.SessionRevokedV1, *events.SessionRefreshReuseDetectedV1:
			s.Revoked = true
		case *events.SessionExpiredV1:
			s.Revoked = true
		}
		s.Version = ev.Version
	}
	return s, nil
}

// Active reports whether the session may still be refreshed at now.
func (s *State) Active(now time.Time) bool {
	return s != nil && !s.Revoked && now.Before(s.ExpiresAt) && (s.IdleExpiresAt.IsZero() || now.Before(s.IdleExpiresAt))
}

// Decision is what a presented refresh token means.
type Decision int

// Decisions.
const (
	// Rotate: the newest token; issue its successor.
	Rotate Decision = iota + 1
	// Repeat: the token before the newest, whose successor is unused: give
	// the same successor again (a lost response, parallel refreshes).
	Repeat
	// Reuse: an older token, or another key: the session must end.
	Reuse
)

// Decide classifies a refresh token (by id) presented with a DPoP key.
func (s *State) Decide(tokenID, jkt string) Decision {
	switch {
	case jkt != s.KeyThumbprint:
		return Reuse
	case tokenID == s.Current:
		return Rotate
	case tokenID == s.Previous:
		return Repeat
	default:
		return Reuse
	}
}

// Tokens derives refresh tokens and their ids with a key every replica
// shares: a successor is an HMAC of the presented token, so it can be given
// again without being stored; an id is another HMAC, so a token can be
// found without being stored.
type Tokens struct{ key []byte }

// NewTokens returns a refresh-token deriver with a key of ≥ 32 bytes.
func NewTokens(key []byte) (*Tokens, error) {
	if len(key) < 32 {
		return nil, errors.New("refresh token key must be at least 32 bytes")
	}
	return &Tokens{key: key}, nil
}

const prefix = "srt_"

func (t *Tokens) mac(label, token string) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(label))
	m.Write([]byte{0})
	m.Write([]byte(token))
	return m.Sum(nil)
}

// New returns a fresh random refresh token (256 bits).
func (t *Tokens) New() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// Successor derives the token that succeeds token.
func (t *Tokens) Successor(token string) string {
	return prefix + base64.RawURLEncoding.EncodeToString(t.mac("strongroom/refresh/successor/v1", token))
}

// ID returns a token's identifier, or "" for something that is not a
// refresh token.
func (t *Tokens) ID(token string) string {
	raw, ok := strings.CutPrefix(token, prefix)
	if !ok || len(raw) != 43 {
		return ""
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(raw); err != nil {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(t.mac("strongroom/refresh/id/v1", token))
}
