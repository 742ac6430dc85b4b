// Package session is the session aggregate: a session's state folded from
// its stream, its refresh-token chain, and the refresh decision
// (CONTRACT.md, Token endpoint: rotation that survives mobile networks).
package session

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/hmackey"
)

// ACR values of a session's sign-in (CONTRACT.md, Token endpoint).
const (
	ACRPasscode  = "urn:strongroom:acr:passcode"
	ACRBiometric = "urn:strongroom:acr:biometric"
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

// Tokens derives refresh tokens and their ids with HMAC keys every
// replica shares. A token names its session and authenticates itself:
//
//	srt_<sid>.<secret>.<tag>
//
// sid is the session (stream) id, 1..100 characters of [A-Za-z0-9_-];
// secret is base64url (unpadded) of 32 bytes; tag is base64url of the
// first 16 bytes of HMAC-SHA-256(key, tag label ‖ 0 ‖ "srt_<sid>.<secret>").
// The tag lets the server find a token's session without storing the
// token, and refuse a token it never issued before deciding anything: a
// sid is no secret (it is in every access token), and an unknown token of
// a session would otherwise count as reuse and end it.
//
// A successor's secret is an HMAC of the whole presented token, so it can
// be given again without being stored; an id is another HMAC of the whole
// token, so a chain is recorded without its tokens.
//
// Keys rotate (the hmac-secret KeySet): a new token and a first successor
// are made with the key active now; a token is checked, and its id
// computed, with the key whose tag it carries, found among the keys not
// yet retired. A successor given again (Repeat) is derived with the key
// that made it the first time, found by its id, so a rotation between two
// parallel refreshes cannot hand out two different successors.
type Tokens struct{ keys *hmackey.Ring }

// NewTokens returns a refresh-token deriver over a key ring.
func NewTokens(keys *hmackey.Ring) (*Tokens, error) {
	if keys == nil {
		return nil, errors.New("refresh tokens need an HMAC key ring")
	}
	return &Tokens{keys: keys}, nil
}

const (
	prefix = "srt_"
	// MaxIDLen bounds a session id a refresh token can carry.
	MaxIDLen  = 100
	secretLen = 43 // base64url of 32 bytes
	tagLen    = 22 // base64url of 16 bytes
	maxToken  = len(prefix) + MaxIDLen + 1 + secretLen + 1 + tagLen

	labelSuccessor = "strongroom/refresh/successor/v1"
	labelID        = "strongroom/refresh/id/v1"
	labelTag       = "strongroom/refresh/tag/v1"
)

var b64 = base64.RawURLEncoding.Strict()

// ValidID reports whether sid can be carried by a refresh token (and is
// the shape of a session id): 1..MaxIDLen characters of [A-Za-z0-9_-].
func ValidID(sid string) bool {
	if len(sid) == 0 || len(sid) > MaxIDLen {
		return false
	}
	for i := 0; i < len(sid); i++ {
		switch c := sid[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

func mac(k *hmackey.Key, label, token string) []byte {
	m := k.New()
	m.Write([]byte(label))
	m.Write([]byte{0})
	m.Write([]byte(token))
	return m.Sum(nil)
}

// seal appends k's tag to "srt_<sid>.<secret>".
func seal(k *hmackey.Key, body string) string {
	return body + "." + b64.EncodeToString(mac(k, labelTag, body)[:16])
}

// New returns a fresh refresh token of session sid with a random 256-bit
// secret. sid must be ValidID.
func (t *Tokens) New(sid string) (string, error) {
	if !ValidID(sid) {
		return "", fmt.Errorf("session id %q cannot be carried by a refresh token", sid)
	}
	k, err := t.keys.Active()
	if err != nil {
		return "", fmt.Errorf("new refresh token: %w", err)
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return seal(k, prefix+sid+"."+b64.EncodeToString(b)), nil
}

// Session returns the session id a refresh token carries, with ok only for
// a well-formed token whose tag verifies under a key not yet retired: one
// this server issued.
func (t *Tokens) Session(token string) (sid string, ok bool) {
	sid, k := t.check(token)
	return sid, k != nil
}

// check parses token and finds the key whose tag it carries (nil if none).
func (t *Tokens) check(token string) (sid string, key *hmackey.Key) {
	if len(token) > maxToken {
		return "", nil
	}
	raw, ok := strings.CutPrefix(token, prefix)
	if !ok {
		return "", nil
	}
	sid, rest, ok := strings.Cut(raw, ".")
	if !ok || !ValidID(sid) {
		return "", nil
	}
	secret, tag, ok := strings.Cut(rest, ".")
	if !ok || len(secret) != secretLen || len(tag) != tagLen {
		return "", nil
	}
	// Strict decoding refuses padding, other alphabets and non-zero
	// trailing bits; the decoded lengths refuse the line breaks it skips:
	// a token has one spelling.
	if b, err := b64.DecodeString(secret); err != nil || len(b) != 32 {
		return "", nil
	}
	got, err := b64.DecodeString(tag)
	if err != nil || len(got) != 16 {
		return "", nil
	}
	body := token[:len(token)-len(tag)-1]
	for _, k := range t.keys.Verifying() {
		if want := mac(k, labelTag, body); hmac.Equal(got, want[:16]) {
			return sid, k
		}
	}
	return "", nil
}

// ID returns a token's identifier (a keyed HMAC of the whole token), or ""
// for anything Session refuses: malformed, or a tag that does not verify.
func (t *Tokens) ID(token string) string {
	_, k := t.check(token)
	if k == nil {
		return ""
	}
	return id(k, token)
}

func id(k *hmackey.Key, token string) string { return b64.EncodeToString(mac(k, labelID, token)) }

func successorOf(k *hmackey.Key, sid, token string) string {
	return seal(k, prefix+sid+"."+b64.EncodeToString(mac(k, labelSuccessor, token)))
}

// Presented is a refresh token whose tag Check verified.
type Presented struct {
	token string
	key   *hmackey.Key
	// SessionID is the session the token names; ID the token's id.
	SessionID, ID string
}

// String and GoString keep the token out of anything that prints a
// Presented (logs, errors, %+v): the session and the id are no secrets.
func (p Presented) String() string {
	return "refresh token " + p.ID + " of session " + p.SessionID
}

// GoString implements fmt.GoStringer like String.
func (p Presented) GoString() string { return p.String() }

// Check is Session and ID at once: a refresh verifies the presented
// token's tag once, not once per derived value (each is an HMAC).
func (t *Tokens) Check(token string) (Presented, bool) {
	sid, k := t.check(token)
	if k == nil {
		return Presented{}, false
	}
	return Presented{token: token, key: k, SessionID: sid, ID: id(k, token)}, true
}

// Next returns the successor of p's token, made with the key active now,
// and the successor's id: the first rotation of p.
func (t *Tokens) Next(p Presented) (successor, successorID string, err error) {
	if p.token == "" {
		return "", "", errors.New("refresh token not checked")
	}
	k, err := t.keys.Active()
	if err != nil {
		return "", "", fmt.Errorf("refresh token successor: %w", err)
	}
	successor = successorOf(k, p.SessionID, p.token)
	return successor, id(k, successor), nil
}

// Again returns the successor of p's token that was handed out before and
// whose id is successorID, derived again with the key that made it; ok is
// false when no key still held derives it (not a successor of p, or made
// with a key retired since — which the hmac-secret KeySet's retireAfter,
// longer than any refresh token lives, rules out).
func (t *Tokens) Again(p Presented, successorID string) (string, bool) {
	if p.token == "" {
		return "", false
	}
	for _, k := range t.keys.Verifying() {
		s := successorOf(k, p.SessionID, p.token)
		if got := id(k, s); hmac.Equal([]byte(got), []byte(successorID)) {
			return s, true
		}
	}
	return "", false
}
