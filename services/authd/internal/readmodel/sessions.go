package readmodel

import (
	"time"

	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/projection"
)

// Names of the session read models. Both are inline: token checks must see
// a revocation the moment its append commits.
const (
	SessionsName     = "sessions"
	AccessTokensName = "access_tokens"
)

// Session is one row of the sessions read model.
type Session struct {
	SessionID     string     `json:"sid"`
	UserID        string     `json:"user_id,omitempty"`
	Subject       string     `json:"subject"`
	ClientID      string     `json:"client_id"`
	DeviceID      string     `json:"device_id,omitempty"`
	GrantType     string     `json:"grant_type"`
	ACR           string     `json:"acr,omitempty"`
	AMR           []string   `json:"amr,omitempty"`
	AuthTime      time.Time  `json:"auth_time"`
	KeyThumbprint string     `json:"key_jkt,omitempty"`
	StartedAt     time.Time  `json:"started_at"`
	ExpiresAt     time.Time  `json:"expires_at"`
	RevokedAt     *time.Time `json:"revoked_at,omitempty"`
	RevokeReason  string     `json:"revoke_reason,omitempty"`
	Version       int64      `json:"version"`
}

// Active reports whether the session may still back tokens at now.
func (s *Session) Active(now time.Time) bool {
	return s.RevokedAt == nil && now.Before(s.ExpiresAt)
}

// Sessions projects session streams into one document per session, owned
// by its user (client sessions have no owner).
func Sessions(reg *events.Registry) projection.Projection {
	return projection.Typed[Session]{
		ProjectionName: SessionsName,
		KeyOf: func(ev eventstore.Event) (string, bool) {
			return ev.StreamID, ev.StreamType == events.StreamSession
		},
		Fold: func(cur *Session, ev eventstore.Event) (*Session, string, error) {
			if cur != nil && ev.Version <= cur.Version {
				return cur, cur.UserID, nil
			}
			payload, err := reg.Decode(ev.Type, ev.SchemaVersion, ev.Data)
			if err != nil {
				return nil, "", err
			}
			var s Session
			if cur != nil {
				s = *cur
			}
			switch p := payload.(type) {
			case *events.SessionStartedV1:
				s = Session{SessionID: ev.StreamID, UserID: p.UserID, Subject: p.Subject, ClientID: p.ClientID,
					DeviceID: p.DeviceID, GrantType: p.GrantType, ACR: p.ACR, AMR: p.AMR, AuthTime: p.AuthTime,
					KeyThumbprint: p.KeyThumbprint, StartedAt: ev.OccurredAt, ExpiresAt: p.ExpiresAt}
			case *events.SessionRevokedV1:
				if s.RevokedAt == nil {
					at := ev.OccurredAt
					s.RevokedAt, s.RevokeReason = &at, p.Reason
				}
			case *events.SessionRefreshReuseDetectedV1:
				if s.RevokedAt == nil {
					at := ev.OccurredAt
					s.RevokedAt, s.RevokeReason = &at, "refresh_reuse"
				}
			case *events.SessionExpiredV1:
				if ev.OccurredAt.Before(s.ExpiresAt) {
					s.ExpiresAt = ev.OccurredAt
				}
			}
			s.Version = ev.Version
			return &s, s.UserID, nil
		},
	}
}

// AccessToken is one row of the access_tokens read model: what
// introspection and revocation need to find a token's session.
type AccessToken struct {
	TokenID       string    `json:"token_id"`
	SessionID     string    `json:"sid"`
	ClientID      string    `json:"client_id"`
	Subject       string    `json:"subject"`
	Scopes        []string  `json:"scopes"`
	Audience      []string  `json:"audience"`
	IssuedAt      time.Time `json:"issued_at"`
	ExpiresAt     time.Time `json:"expires_at"`
	KeyThumbprint string    `json:"key_jkt,omitempty"`
	ACR           string    `json:"acr,omitempty"`
	AMR           []string  `json:"amr,omitempty"`
	AuthTime      time.Time `json:"auth_time"`
}

// AccessTokens indexes issued access tokens by token id, owned by their
// session.
func AccessTokens(reg *events.Registry) projection.Projection {
	decode := func(ev eventstore.Event) (*events.SessionStartedV1, bool) {
		if ev.StreamType != events.StreamSession || ev.Type != events.SessionStarted {
			return nil, false
		}
		p, err := events.DecodeAs[events.SessionStartedV1](reg, ev.Type, ev.SchemaVersion, ev.Data)
		return p, err == nil
	}
	return projection.Typed[AccessToken]{
		ProjectionName: AccessTokensName,
		KeyOf: func(ev eventstore.Event) (string, bool) {
			p, ok := decode(ev)
			if !ok || p.AccessTokenID == "" {
				return "", false
			}
			return p.AccessTokenID, true
		},
		Fold: func(_ *AccessToken, ev eventstore.Event) (*AccessToken, string, error) {
			p, _ := decode(ev)
			return &AccessToken{TokenID: p.AccessTokenID, SessionID: ev.StreamID, ClientID: p.ClientID,
				Subject: p.Subject, Scopes: p.Scopes, Audience: p.Audience, IssuedAt: ev.OccurredAt,
				ExpiresAt: p.AccessTokenExpiresAt, KeyThumbprint: p.KeyThumbprint, ACR: p.ACR, AMR: p.AMR,
				AuthTime: p.AuthTime}, ev.StreamID, nil
		},
	}
}
