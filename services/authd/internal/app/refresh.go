package app

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/domain/session"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/projection"
	"strongroom.dev/services/authd/internal/readmodel"
)

// Refreshed is a successful refresh.
type Refreshed struct {
	Session *session.State
	// RefreshToken is the successor to hand out: a new one, or the same
	// one again when the presented token's successor was not used yet.
	RefreshToken  string
	IdleExpiresAt time.Time
}

// Refresh rotates a refresh token (CONTRACT.md, Token endpoint). The
// decision and its event are one compare-and-set append on the session
// stream, retried on a conflict with fresh state, so:
//   - parallel refreshes with the same token all get the same successor
//     (the first rotates, the rest find the token is now the previous one
//     and repeat), and exactly one chain continues;
//   - a token older than the previous one, or any token with another key,
//     is reuse: session.refresh_reuse_detected ends the session;
//   - once a revocation has committed, no refresh of the session succeeds
//     (its append moved the version; the retry sees the session ended).
//
// clientID is the authenticated client; accessTokenID and accessExpiresAt
// describe the access token the caller
// will sign for this refresh; it is recorded in the same event.
func (s *Service) Refresh(ctx context.Context, clientID, token, jkt, accessTokenID string, accessExpiresAt time.Time) (*Refreshed, error) {
	invalid := func() error { return refuse(400, "invalid_grant", "invalid_grant", "the refresh token is not valid") }
	// The token names its session, and its tag proves this server issued
	// it: a malformed or forged token (a known sid, a made-up secret) is
	// refused here and never reaches the reuse decision.
	presented, ok := s.RefreshTokens.Check(token)
	if !ok {
		return nil, invalid()
	}
	sid, id := presented.SessionID, presented.ID
	var out *Refreshed
	reused := false
	err := retry(func() error {
		st, doc, err := s.sessionState(ctx, sid)
		if err != nil {
			return err
		}
		now := s.Now()
		if st == nil || !st.Active(now) || st.ClientID != clientID {
			// Another client's token is unknown to this one: nothing is
			// decided or recorded.
			return invalid()
		}
		// The audit trail names who refreshed: the session's device (or,
		// for a client's session, the client).
		actor := eventstore.Actor{Kind: "client", ID: clientID}
		if st.DeviceID != "" {
			actor = eventstore.Actor{Kind: "device", ID: st.DeviceID}
		}
		actx := eventstore.WithActor(ctx, actor)
		decision := st.Decide(id, jkt)
		if decision == session.Reuse {
			reused = true
			_, err := s.Events.Append(actx, eventstore.Append{StreamID: st.ID, StreamType: events.StreamSession, ExpectedVersion: st.Version,
				UserID: st.UserID, Known: doc,
				Events: []eventstore.Pending{{Type: events.SessionRefreshReuse, Payload: events.SessionRefreshReuseDetectedV1{TokenID: id, KeyThumbprint: jkt}}}})
			return err
		}
		var successor, successorID string
		if decision == session.Repeat {
			// The successor handed out before, derived again with the
			// key that made it (it may no longer be the active one).
			var ok bool
			if successor, ok = s.RefreshTokens.Again(presented, st.Current); !ok {
				return invalid()
			}
			successorID = st.Current
		} else if successor, successorID, err = s.RefreshTokens.Next(presented); err != nil {
			return err
		}
		idle := minTime(now.Add(s.RefreshLifetime), st.ExpiresAt).UTC()
		ev := events.SessionRefreshedV1{PreviousTokenID: id, TokenID: successorID,
			Repeat: decision == session.Repeat, AccessTokenID: accessTokenID,
			AccessTokenExpiresAt: accessExpiresAt.UTC(), IdleExpiresAt: idle}
		if _, err := s.Events.Append(actx, eventstore.Append{StreamID: st.ID, StreamType: events.StreamSession, ExpectedVersion: st.Version,
			UserID: st.UserID, Known: doc,
			Events: []eventstore.Pending{{Type: events.SessionRefreshed, Payload: ev}}}); err != nil {
			return err
		}
		out = &Refreshed{Session: st, RefreshToken: successor, IdleExpiresAt: idle}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if reused {
		s.Metrics.ReuseDetected(ctx)
		return nil, refuse(400, "invalid_grant", "refresh_token_reused", "the refresh token was already used: the session has ended")
	}
	return out, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// RevokeRefreshToken ends the session of a refresh token (RFC 7009). Only
// the holder may: the same client, and the proof's key must be the
// session's. Anything else — including a token whose tag does not verify —
// is answered like an unknown token, and changes nothing.
func (s *Service) RevokeRefreshToken(ctx context.Context, token, jkt, clientID string) error {
	sid, ok := s.RefreshTokens.Session(token)
	if !ok {
		return nil
	}
	evs, err := s.Events.ReadStream(ctx, sid, 0)
	if err != nil {
		return err
	}
	st, err := session.Fold(s.Registry, evs)
	if err != nil || st == nil || st.ClientID != clientID || st.KeyThumbprint != jkt || st.Revoked {
		return err
	}
	return retry(func() error {
		evs, err := s.Events.ReadStream(ctx, sid, 0)
		if err != nil {
			return err
		}
		st, err := session.Fold(s.Registry, evs)
		if err != nil || st.Revoked {
			return err
		}
		_, err = s.Events.Append(ctx, eventstore.Append{StreamID: st.ID, StreamType: events.StreamSession, ExpectedVersion: st.Version,
			Events: []eventstore.Pending{{Type: events.SessionRevoked, Payload: events.SessionRevokedV1{Reason: "token_revoked"}}}})
		return err
	})
}

// ExpireSessions records session.expired for every session past its idle
// or absolute end (revoked ones too), which removes it from the sessions
// read model. Expired sessions already stopped working by their own
// timestamps; this only writes it down and cleans up. It reads only the
// sessions that are due (an index on the read model), in batches. Several
// replicas may run it at once: each append carries the version it read, so
// a session expires once.
func (s *Service) ExpireSessions(ctx context.Context) (int, error) {
	const batch = 500
	now := s.Now()
	n := 0
	for {
		docs, err := s.Models.Due(ctx, readmodel.SessionsName, now, batch)
		if err != nil {
			return n, err
		}
		expired := n
		for _, d := range docs {
			sess, err := projection.Decode[readmodel.Session](d)
			if err != nil || sess.Active(now) {
				continue
			}
			reason := "absolute"
			if !sess.IdleExpiresAt.IsZero() && !now.Before(sess.IdleExpiresAt) && now.Before(sess.ExpiresAt) {
				reason = "idle"
			}
			_, err = s.Events.Append(ctx, eventstore.Append{StreamID: sess.SessionID, StreamType: events.StreamSession,
				ExpectedVersion: sess.Version, UserID: sess.UserID, Known: map[string]json.RawMessage{readmodel.SessionsName: d.Data},
				Events: []eventstore.Pending{{Type: events.SessionExpired, Payload: events.SessionExpiredV1{Reason: reason}}}})
			switch {
			case errors.Is(err, eventstore.ErrConflict):
				continue // another replica (or a revocation) got there first; the next sweep looks again
			case err != nil:
				return n, err
			}
			n++
		}
		// Another batch only if this one was full and expired something:
		// a batch of nothing but conflicts waits for the next sweep rather
		// than spin.
		if len(docs) < batch || n == expired {
			return n, nil
		}
	}
}

// sessionState reads a session's state from the inline sessions read
// model, which the same transaction as every session event writes: O(1)
// however long the refresh chain, and current enough for a decision whose
// append carries the version it read (a stale read conflicts and retries).
// It also returns the document, for the append to fold into (Known) instead
// of reading it again.
func (s *Service) sessionState(ctx context.Context, sid string) (*session.State, map[string]json.RawMessage, error) {
	doc, ok, err := s.Models.Get(ctx, readmodel.SessionsName, sid)
	if err != nil || !ok {
		return nil, nil, err
	}
	d, err := projection.Decode[readmodel.Session](doc)
	if err != nil {
		return nil, nil, err
	}
	return &session.State{ID: d.SessionID, UserID: d.UserID, DeviceID: d.DeviceID, ClientID: d.ClientID,
			KeyThumbprint: d.KeyThumbprint, ACR: d.ACR, AMR: d.AMR, AuthTime: d.AuthTime, Scopes: d.Scopes,
			Audience: d.Audience, ExpiresAt: d.ExpiresAt, IdleExpiresAt: d.IdleExpiresAt,
			Current: d.RefreshCurrent, Previous: d.RefreshPrevious, Revoked: d.RevokedAt != nil, Version: d.Version},
		map[string]json.RawMessage{readmodel.SessionsName: doc.Data}, nil
}
