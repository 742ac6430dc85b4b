package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/app"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/projection"
	"strongroom.dev/services/authd/internal/readmodel"
)

// ReplayStore remembers one-time values (DPoP proof jti, client assertion
// jti) across every replica until they expire.
type ReplayStore interface {
	// Remember records value under scope until the given time; fresh is
	// false when it was already recorded (a replay).
	Remember(ctx context.Context, scope, value string, until time.Time) (fresh bool, err error)
	// Seen reports whether value is recorded under scope.
	Seen(ctx context.Context, scope, value string) (bool, error)
}

// Storage is fosite's storage, backed by the event store: issuing an
// access token starts a session (session.started, its own stream). An
// access token is looked up by the session id it carries (its "signature",
// see jtiStrategy) in the inline sessions read model, which the same
// append transaction writes, so a revocation is seen at once. No index of
// issued tokens is kept.
type Storage struct {
	Clients *Clients
	Events  eventstore.Store
	Models  projection.Reader
	Replay  ReplayStore
	// DeviceSignedIn checks a device again after a grant started a session
	// for it (app.Service.DeviceSignedIn); nil skips the check.
	DeviceSignedIn func(ctx context.Context, deviceID string) error
	Now            func() time.Time
}

var (
	_ fosite.Storage                = (*Storage)(nil)
	_ oauth2.CoreStorage            = (*Storage)(nil)
	_ oauth2.TokenRevocationStorage = (*Storage)(nil)
)

// TokenID is the identifier under which an access token is recorded in
// session events (the audit trail): the SHA-256 of its jti. The token
// itself is never stored.
func TokenID(jti string) string {
	sum := sha256.Sum256([]byte(jti))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// GetClient implements fosite.ClientManager.
func (s *Storage) GetClient(_ context.Context, id string) (fosite.Client, error) {
	c, ok := s.Clients.Get(id)
	if !ok {
		return nil, fosite.ErrNotFound
	}
	return c, nil
}

const assertionScope = "client_assertion"

// errStorage marks failures of the storage itself (the database), which
// must stay server errors however fosite reports them.
var errStorage = errors.New("storage failure")

func storageErr(err error) error { return fmt.Errorf("%w: %w", errStorage, err) }

// ClientAssertionJWTValid implements fosite.ClientManager.
func (s *Storage) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	seen, err := s.Replay.Seen(ctx, assertionScope, jti)
	if err != nil {
		return storageErr(err)
	}
	if seen {
		return fosite.ErrJTIKnown
	}
	return nil
}

// SetClientAssertionJWT implements fosite.ClientManager. Recording is
// atomic, so two replicas racing with the same assertion cannot both win.
func (s *Storage) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	fresh, err := s.Replay.Remember(ctx, assertionScope, jti, exp)
	if err != nil {
		return storageErr(err)
	}
	if !fresh {
		return fosite.ErrJTIKnown
	}
	return nil
}

// CreateAccessTokenSession implements oauth2.AccessTokenStorage: the first
// access token of a grant starts its session.
func (s *Storage) CreateAccessTokenSession(ctx context.Context, signature string, req fosite.Requester) error {
	sess, ok := req.GetSession().(*Session)
	if !ok {
		return fmt.Errorf("session is %T, want *oauth.Session", req.GetSession())
	}
	sig, ok := parseAccessSignature(signature)
	if !ok {
		return fmt.Errorf("access token signature %q is malformed", signature)
	}
	if sig.SID != req.GetID() {
		// Lookups find a token's session by its sid: a token naming
		// another session than the stream it starts would never be found.
		return fmt.Errorf("access token names session %q, the grant is session %q", sig.SID, req.GetID())
	}
	if sess.Recorded {
		return nil
	}
	claims := sess.JWTClaims
	grant := sess.GrantType
	accessExp := sess.GetExpiresAt(fosite.AccessToken)
	sessionExp := sess.SessionExpiresAt
	if sessionExp.IsZero() {
		sessionExp = accessExp
	}
	acr, _ := sess.Claim(ClaimACR).(string)
	amr, _ := sess.Claim(ClaimAMR).([]string)
	authTime := time.Time{}
	if at, ok := sess.Claim(ClaimAuthTime).(int64); ok {
		authTime = time.Unix(at, 0).UTC()
	}
	started := events.SessionStartedV1{
		UserID: sess.UserID, Subject: claims.Subject, DeviceID: sess.DeviceID,
		ClientID: req.GetClient().GetID(), GrantType: grant, ACR: acr, AMR: amr, AuthTime: authTime,
		KeyThumbprint: sess.KeyThumbprint, Scopes: nonNil(req.GetGrantedScopes()), Audience: nonNil(req.GetGrantedAudience()),
		AccessTokenID: TokenID(sig.JTI), AccessTokenExpiresAt: accessExp.UTC(), ExpiresAt: sessionExp.UTC(),
		RefreshTokenID: sess.RefreshTokenID, IdleExpiresAt: sess.IdleExpiresAt.UTC(),
	}
	appends := []eventstore.Append{{
		StreamID: req.GetID(), StreamType: events.StreamSession, UserID: sess.UserID,
		Events: []eventstore.Pending{{Type: events.SessionStarted, Payload: started}},
	}}
	if sess.Consume != nil {
		appends = append(appends, *sess.Consume)
	}
	_, err := s.Events.Append(ctx, appends...)
	if sess.Consume != nil && errors.Is(err, eventstore.ErrConflict) {
		// The session's stream is new, so the conflict is the challenge's:
		// another grant consumed it first.
		return app.ChallengeInvalid()
	}
	if err != nil {
		return fmt.Errorf("start session: %w", err)
	}
	if sess.DeviceID != "" && s.DeviceSignedIn != nil {
		// A lock that committed after the grant decided must still win:
		// see app.Service.DeviceSignedIn.
		if err := s.DeviceSignedIn(ctx, sess.DeviceID); err != nil {
			reason := "device_locked"
			if e := (*app.Error)(nil); errors.As(err, &e) && e.Code == "device_unknown" {
				reason = "device_revoked"
			}
			if rerr := s.RevokeSession(context.WithoutCancel(ctx), req.GetID(), reason, ""); rerr != nil {
				return fmt.Errorf("revoke a session started as its device was locked: %w", rerr)
			}
			return err
		}
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// GetAccessTokenSession implements oauth2.AccessTokenStorage: the session
// named by the token's sid, with the token's own iat and exp. A token of a
// revoked or ended session is returned with fosite.ErrInactiveToken, which
// introspection answers as active:false and revocation as already done; a
// session that is gone (expired and swept, or never started) is
// fosite.ErrNotFound.
//
// sid, iat and exp come from the token's payload unverified (the signature
// is all fosite passes). That is safe because nothing acts on the result
// before the token is verified: introspection (fosite's CoreValidator)
// calls ValidateAccessToken — the signature by a published key, which
// covers sid, iat and exp, then exp itself — right after this lookup and
// answers active:false if it fails; revocation verifies the token in the
// HTTP layer (Server.revoke) before fosite looks it up. A forged payload
// can therefore only choose which session is read, never what is answered.
func (s *Storage) GetAccessTokenSession(ctx context.Context, signature string, _ fosite.Session) (fosite.Requester, error) {
	tok, ok := parseAccessSignature(signature)
	if !ok {
		return nil, fosite.ErrNotFound
	}
	issuedAt, expiresAt := time.Unix(tok.IAT, 0).UTC(), time.Unix(tok.EXP, 0).UTC()
	sess, active, err := s.session(ctx, tok.SID)
	if err != nil {
		return nil, err
	}
	client, ok := s.Clients.Get(sess.ClientID)
	if !ok {
		// The client was removed from the configuration: its tokens die.
		return nil, fosite.ErrNotFound
	}
	fs := NewSession()
	fs.UserID, fs.DeviceID = sess.UserID, sess.DeviceID
	fs.Subject = sess.Subject
	fs.JWTClaims.Subject = sess.Subject
	fs.JWTClaims.IssuedAt = issuedAt
	fs.JWTClaims.ExpiresAt = expiresAt
	fs.SetExpiresAt(fosite.AccessToken, expiresAt)
	fs.SetClaim(ClaimSID, sess.SessionID)
	fs.SetClaim(ClaimClientID, sess.ClientID)
	if sess.ACR != "" {
		fs.SetClaim(ClaimACR, sess.ACR)
		fs.SetClaim(ClaimAMR, sess.AMR)
		fs.SetClaim(ClaimAuthTime, sess.AuthTime.Unix())
	}
	if sess.KeyThumbprint != "" {
		fs.BindTo(sess.KeyThumbprint)
	}
	req := &fosite.Request{
		ID: sess.SessionID, RequestedAt: issuedAt, Client: client,
		RequestedScope: sess.Scopes, GrantedScope: sess.Scopes,
		RequestedAudience: sess.Audience, GrantedAudience: sess.Audience,
		Form: url.Values{}, Session: fs,
	}
	if !active {
		return req, fosite.ErrInactiveToken
	}
	return req, nil
}

// session reads a session's state from the inline read model.
func (s *Storage) session(ctx context.Context, sid string) (*readmodel.Session, bool, error) {
	doc, ok, err := s.Models.Get(ctx, readmodel.SessionsName, sid)
	if err != nil {
		return nil, false, err
	}
	if !ok {
		return nil, false, fosite.ErrNotFound
	}
	sess, err := projection.Decode[readmodel.Session](doc)
	if err != nil {
		return nil, false, err
	}
	return sess, sess.Active(s.Now()), nil
}

// SessionActive reports whether a session may still back tokens.
func (s *Storage) SessionActive(ctx context.Context, sid string) (bool, error) {
	_, active, err := s.session(ctx, sid)
	if errors.Is(err, fosite.ErrNotFound) {
		return false, nil
	}
	return active, err
}

// ErrNoSuchSession is returned when revoking a session that never started.
var ErrNoSuchSession = errors.New("no such session")

// RevokeSession ends a session with one session.revoked event, which every
// token of the session obeys at once. Revoking a revoked session changes
// nothing.
func (s *Storage) RevokeSession(ctx context.Context, sid, reason, operator string) error {
	for attempt := 0; ; attempt++ {
		evs, err := s.Events.ReadStream(ctx, sid, 0)
		if err != nil {
			return err
		}
		if len(evs) == 0 || evs[0].StreamType != events.StreamSession {
			return ErrNoSuchSession
		}
		for _, ev := range evs {
			if ev.Type == events.SessionRevoked || ev.Type == events.SessionRefreshReuse {
				return nil
			}
		}
		_, err = s.Events.Append(ctx, eventstore.Append{
			StreamID: sid, StreamType: events.StreamSession, ExpectedVersion: evs[len(evs)-1].Version,
			Events: []eventstore.Pending{{Type: events.SessionRevoked, Payload: events.SessionRevokedV1{Reason: reason, Operator: operator}}},
		})
		if errors.Is(err, eventstore.ErrConflict) && attempt < 128 {
			// Something else happened to the session (a refresh): look
			// again. A revocation must win however busy the session is.
			time.Sleep(time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt/8, 4))))
			continue
		}
		return err
	}
}

// RevokeAccessToken implements oauth2.TokenRevocationStorage: revoking
// any token of a session revokes the session (CONTRACT.md, Sessions).
func (s *Storage) RevokeAccessToken(ctx context.Context, requestID string) error {
	err := s.RevokeSession(ctx, requestID, "token_revoked", "")
	if errors.Is(err, ErrNoSuchSession) {
		return fosite.ErrNotFound
	}
	return err
}

// RevokeRefreshToken implements oauth2.TokenRevocationStorage.
func (s *Storage) RevokeRefreshToken(ctx context.Context, requestID string) error {
	return s.RevokeAccessToken(ctx, requestID)
}

// DeleteAccessTokenSession implements oauth2.AccessTokenStorage. Tokens
// are never deleted: their session is revoked. fosite calls this only from
// flows authd does not compose (authorization code, its own refresh).
func (s *Storage) DeleteAccessTokenSession(context.Context, string) error {
	return errUnsupportedFlow
}

var errUnsupportedFlow = errors.New("flow not supported by authd")

// CreateRefreshTokenSession implements oauth2.RefreshTokenStorage. Refresh
// tokens are issued by authd's own refresh grant, never through fosite's.
func (s *Storage) CreateRefreshTokenSession(context.Context, string, string, fosite.Requester) error {
	return errUnsupportedFlow
}

// GetRefreshTokenSession implements oauth2.RefreshTokenStorage: no refresh
// token is known to fosite's storage (revocation then tries access tokens).
func (s *Storage) GetRefreshTokenSession(context.Context, string, fosite.Session) (fosite.Requester, error) {
	return nil, fosite.ErrNotFound
}

// DeleteRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (s *Storage) DeleteRefreshTokenSession(context.Context, string) error { return errUnsupportedFlow }

// RotateRefreshToken implements oauth2.RefreshTokenStorage.
func (s *Storage) RotateRefreshToken(context.Context, string, string) error {
	return errUnsupportedFlow
}

// CreateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage; authd
// has no authorization endpoint.
func (s *Storage) CreateAuthorizeCodeSession(context.Context, string, fosite.Requester) error {
	return errUnsupportedFlow
}

// GetAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage.
func (s *Storage) GetAuthorizeCodeSession(context.Context, string, fosite.Session) (fosite.Requester, error) {
	return nil, fosite.ErrNotFound
}

// InvalidateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage.
func (s *Storage) InvalidateAuthorizeCodeSession(context.Context, string) error {
	return errUnsupportedFlow
}
