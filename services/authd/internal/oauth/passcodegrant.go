package oauth

import (
	"context"
	"errors"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"strongroom.dev/services/authd/internal/app"
	"strongroom.dev/services/authd/internal/domain/session"
)

// ACR values and AMR of the grants (CONTRACT.md, Token endpoint).
const (
	ACRPasscode  = "urn:strongroom:acr:passcode"
	ACRBiometric = "urn:strongroom:acr:biometric"
)

// PasscodeSignIn is the passcode use case (app.Service.PasscodeSignIn).
type PasscodeSignIn func(ctx context.Context, in app.Sealed) (*app.SignIn, error)

// PasscodeGrant is fosite's token handler for
// urn:strongroom:params:oauth:grant-type:passcode. By the time it runs the
// HTTP layer has verified the DPoP proof (nonce, jti) and matched its key
// to device_id's registered key.
type PasscodeGrant struct {
	SignIn PasscodeSignIn
	Helper *oauth2.HandleHelper
	// AccessLifetime and SessionLifetime (absolute, 12 h by default).
	AccessLifetime, SessionLifetime time.Duration
	Scopes                          fosite.ScopeStrategy
	Now                             func() time.Time
	// RefreshTokens makes the session's first refresh token, good for
	// RefreshLifetime (idle) unless rotated.
	RefreshTokens   *session.Tokens
	RefreshLifetime time.Duration
}

var _ fosite.TokenEndpointHandler = (*PasscodeGrant)(nil)

// CanSkipClientAuth implements fosite.TokenEndpointHandler: the app is a
// public client and authenticates with client_id; its device authenticates
// with the DPoP key.
func (g *PasscodeGrant) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool { return false }

// CanHandleTokenEndpointRequest implements fosite.TokenEndpointHandler.
func (g *PasscodeGrant) CanHandleTokenEndpointRequest(_ context.Context, r fosite.AccessRequester) bool {
	return r.GetGrantTypes().ExactOne(GrantPasscode)
}

// HandleTokenEndpointRequest implements fosite.TokenEndpointHandler: it
// checks the passcode and fills the session of the tokens.
func (g *PasscodeGrant) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if !g.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	if !r.GetClient().GetGrantTypes().Has(GrantPasscode) {
		return fosite.ErrUnauthorizedClient.WithHint("The client may not use the passcode grant.")
	}
	proof, ok := ProofFrom(ctx)
	if !ok {
		return fosite.ErrInvalidRequest.WithHint("A DPoP proof is required.")
	}
	for _, sc := range r.GetRequestedScopes() {
		if !g.Scopes(r.GetClient().GetScopes(), sc) {
			return fosite.ErrInvalidScope.WithHintf("The client may not request scope %q.", sc)
		}
	}
	form := r.GetRequestForm()
	res, err := g.SignIn(ctx, app.Sealed{DeviceID: form.Get("device_id"), KeyThumbprint: proof.JKT, JTI: proof.JTI,
		Sealed: form.Get("passcode_sealed"), KID: form.Get("sealing_kid")})
	if err != nil {
		return err
	}
	sess, ok := r.GetSession().(*Session)
	if !ok {
		return errors.New("passcode grant: unexpected session type")
	}
	now := g.Now().UTC()
	sess.UserID, sess.DeviceID, sess.Subject = res.UserID, res.DeviceID, res.UserID
	sess.JWTClaims.Subject = res.UserID
	sess.SetClaim(ClaimACR, ACRPasscode)
	// "swk": no verified key attestation yet (CONTRACT.md, Actors).
	sess.SetClaim(ClaimAMR, []string{"pin", "swk"})
	sess.SetClaim(ClaimAuthTime, now.Unix())
	sess.SetExpiresAt(fosite.AccessToken, now.Add(g.AccessLifetime))
	sess.SessionExpiresAt = now.Add(g.SessionLifetime)
	if g.RefreshTokens != nil && r.GetClient().GetGrantTypes().Has(GrantRefreshToken) {
		// The token carries its session's id: the request's id, which
		// fosite assigns once (lazily, on first GetID) and which becomes
		// the session stream's id (CreateAccessTokenSession appends to
		// req.GetID()) and the access token's sid (token endpoint).
		if sess.RefreshToken, err = g.RefreshTokens.New(r.GetID()); err != nil {
			return err
		}
		sess.RefreshTokenID = g.RefreshTokens.ID(sess.RefreshToken)
		sess.IdleExpiresAt = now.Add(g.RefreshLifetime)
	}
	for _, sc := range r.GetRequestedScopes() {
		r.GrantScope(sc)
	}
	return nil
}

// PopulateTokenEndpointResponse implements fosite.TokenEndpointHandler.
func (g *PasscodeGrant) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
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
