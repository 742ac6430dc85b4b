package oauth

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"strongroom.dev/services/authd/internal/app"
)

// RefreshFunc is the refresh use case (app.Service.Refresh).
type RefreshFunc func(ctx context.Context, clientID, token, jkt, accessTokenID string, accessExpiresAt time.Time) (*app.Refreshed, error)

// RefreshGrant is authd's own refresh_token handler. fosite's mints a
// random successor and answers a concurrent refresh with a retry error;
// this one gives a derived successor that parallel and repeated refreshes
// share, detects reuse, and records the new access token in the same
// append as its decision (CONTRACT.md, Token endpoint).
type RefreshGrant struct {
	Refresh        RefreshFunc
	Helper         *oauth2.HandleHelper
	AccessLifetime time.Duration
	Now            func() time.Time
}

var _ fosite.TokenEndpointHandler = (*RefreshGrant)(nil)

// CanSkipClientAuth implements fosite.TokenEndpointHandler.
func (g *RefreshGrant) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool { return false }

// CanHandleTokenEndpointRequest implements fosite.TokenEndpointHandler.
func (g *RefreshGrant) CanHandleTokenEndpointRequest(_ context.Context, r fosite.AccessRequester) bool {
	return r.GetGrantTypes().ExactOne(GrantRefreshToken)
}

// HandleTokenEndpointRequest implements fosite.TokenEndpointHandler.
func (g *RefreshGrant) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if !g.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	if !r.GetClient().GetGrantTypes().Has(GrantRefreshToken) {
		return fosite.ErrUnauthorizedClient.WithHint("The client may not use refresh tokens.")
	}
	proof, ok := ProofFrom(ctx)
	if !ok {
		return fosite.ErrInvalidRequest.WithHint("A DPoP proof is required.")
	}
	sess, ok := r.GetSession().(*Session)
	if !ok {
		return errors.New("refresh grant: unexpected session type")
	}
	jti := uuid.NewString()
	exp := g.Now().UTC().Add(g.AccessLifetime)
	res, err := g.Refresh(ctx, r.GetClient().GetID(), r.GetRequestForm().Get("refresh_token"), proof.JKT, TokenID(jti), exp)
	if err != nil {
		return err
	}
	st := res.Session
	// The session's sign-in stays: auth_time and acr are the sign-in's.
	r.SetID(st.ID)
	sess.UserID, sess.DeviceID, sess.Subject = st.UserID, st.DeviceID, st.UserID
	sess.JWTClaims.Subject = st.UserID
	sess.JWTClaims.JTI = jti
	sess.SetClaim(ClaimACR, st.ACR)
	sess.SetClaim(ClaimAMR, st.AMR)
	sess.SetClaim(ClaimAuthTime, st.AuthTime.Unix())
	sess.SetExpiresAt(fosite.AccessToken, exp)
	sess.RefreshToken, sess.IdleExpiresAt, sess.Recorded = res.RefreshToken, res.IdleExpiresAt, true
	for _, sc := range st.Scopes {
		r.GrantScope(sc)
	}
	for _, a := range st.Audience {
		r.GrantAudience(a)
	}
	return nil
}

// PopulateTokenEndpointResponse implements fosite.TokenEndpointHandler.
func (g *RefreshGrant) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !g.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	if _, err := g.Helper.IssueAccessToken(ctx, g.AccessLifetime, r, resp); err != nil {
		return err
	}
	if sess, ok := r.GetSession().(*Session); ok && sess.RefreshToken != "" {
		resp.SetExtra("refresh_token", sess.RefreshToken)
	}
	return nil
}
