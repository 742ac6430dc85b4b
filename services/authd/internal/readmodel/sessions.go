package readmodel

import (
	"time"

	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/projection"
)

// SessionsName is the session read model. It is inline: token checks
// must see a revocation the moment its append commits. It is the only
// index tokens need: a refresh token carries its session id (with a tag
// that proves the server issued it), and an access token's sid is covered
// by its signature.
const SessionsName = "sessions"

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
	Scopes        []string   `json:"scopes,omitempty"`
	Audience      []string   `json:"audience,omitempty"`
	StartedAt     time.Time  `json:"started_at"`
	ExpiresAt     time.Time  `json:"expires_at"`
	IdleExpiresAt time.Time  `json:"idle_expires_at,omitempty"`
	RevokedAt     *time.Time `json:"revoked_at,omitempty"`
	RevokeReason  string     `json:"revoke_reason,omitempty"`
	// RefreshCurrent and RefreshPrevious are the ids of the newest refresh
	// token and the one it succeeded: with Version, what a refresh decides
	// on, read in O(1) however long the chain has grown.
	RefreshCurrent  string `json:"refresh_current,omitempty"`
	RefreshPrevious string `json:"refresh_previous,omitempty"`
	Version         int64  `json:"version"`
}

// Active reports whether the session may still back tokens at now.
func (s *Session) Active(now time.Time) bool {
	return s.RevokedAt == nil && now.Before(s.ExpiresAt) && (s.IdleExpiresAt.IsZero() || now.Before(s.IdleExpiresAt))
}

// Sessions projects session streams into one document per session, owned
// by its user (client sessions have no owner).
func Sessions(reg *events.Registry) projection.Projection {
	return projection.Typed[Session]{
		ProjectionName: SessionsName,
		KeyOf: func(ev eventstore.Event) (string, bool) {
			return ev.StreamID, ev.StreamType == events.StreamSession
		},
		VersionOf: func(s *Session) int64 { return s.Version },
		// The sweeper records session.expired when a session is due. Due
		// is rounded up to the minute (the sweeper runs once a minute
		// anyway; sessions end by their own timestamps): refreshes within
		// one minute then leave the indexed column as it was, so the row
		// is updated in place without touching the index.
		DueOf: func(s *Session) time.Time {
			end := s.ExpiresAt
			if !s.IdleExpiresAt.IsZero() && s.IdleExpiresAt.Before(end) {
				end = s.IdleExpiresAt
			}
			if up := end.Truncate(time.Minute); up.Before(end) {
				return up.Add(time.Minute)
			}
			return end
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
					KeyThumbprint: p.KeyThumbprint, Scopes: p.Scopes, Audience: p.Audience,
					StartedAt: ev.OccurredAt, ExpiresAt: p.ExpiresAt,
					IdleExpiresAt: p.IdleExpiresAt, RefreshCurrent: p.RefreshTokenID}
			case *events.SessionRefreshedV1:
				s.IdleExpiresAt = p.IdleExpiresAt
				if !p.Repeat {
					s.RefreshPrevious, s.RefreshCurrent = p.PreviousTokenID, p.TokenID
				}
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
				// An ended session leaves the read model; its story stays
				// in the log.
				return nil, "", nil
			}
			s.Version = ev.Version
			return &s, s.UserID, nil
		},
	}
}
