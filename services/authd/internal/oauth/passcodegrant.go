package oauth

import (
	"context"
	"errors"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"strongroom.dev/services/authd/internal/app"
	"strongroom.dev/services/authd/internal/domain/session"
	"strongroom.dev/services/dpop"
)

// ACR values and AMR of the grants (CONTRACT.md, Token endpoint).
const (
	ACRPasscode  = session.ACRPasscode
	ACRBiometric = session.ACRBiometric
)

// PasscodeSignIn is the passcode use case (app.Service.PasscodeSignIn).
type PasscodeSignIn func(ctx context.Context, in app.Sealed) (*app.SignIn, error)

// PasscodeGrant is fosite's token handler for
// urn:strongroom:params:oauth:grant-type:passcode. By the time it runs the
// HTTP layer has verified the DPoP proof (nonce, jti) and matched its key
// to device_id's registered key.
type PasscodeGrant struct {
	SignIn PasscodeSignIn
	DeviceGrant
}

// DeviceGrant is what the passcode and biometric grants share: the
// lifetimes and refresh tokens of the sessions they start.
type DeviceGrant struct {
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
	proof, err := g.check(ctx, r)
	if err != nil {
		return err
	}
	form := r.GetRequestForm()
	res, err := g.SignIn(ctx, app.Sealed{DeviceID: form.Get("device_id"), KeyThumbprint: proof.JKT, JTI: proof.JTI,
		Sealed: form.Get("passcode_sealed"), KID: form.Get("sealing_kid")})
	if err != nil {
		return err
	}
	return g.signedIn(r, res.UserID, res.DeviceID, ACRPasscode, []string{"pin", "swk"}, true)
}

// signedIn fills the session of a device sign-in: the user, the factor
// (acr, amr; "swk" while no key attestation is verified — CONTRACT.md,
// Actors), auth_time now, the session's lifetimes and, when refresh is
// true and the client may refresh, its first refresh token.
func (g *DeviceGrant) signedIn(r fosite.AccessRequester, userID, deviceID, acr string, amr []string, refresh bool) error {
	sess, ok := r.GetSession().(*Session)
	if !ok {
		return errors.New("device grant: unexpected session type")
	}
	now := g.Now().UTC()
	sess.UserID, sess.DeviceID, sess.Subject = userID, deviceID, userID
	sess.JWTClaims.Subject = userID
	sess.SetClaim(ClaimACR, acr)
	sess.SetClaim(ClaimAMR, amr)
	sess.SetClaim(ClaimAuthTime, now.Unix())
	sess.SetExpiresAt(fosite.AccessToken, now.Add(g.AccessLifetime))
	if refresh {
		sess.SessionExpiresAt = now.Add(g.SessionLifetime)
	}
	if refresh && g.RefreshTokens != nil && r.GetClient().GetGrantTypes().Has(GrantRefreshToken) {
		// The token carries its session's id: the request's id, which
		// fosite assigns once (lazily, on first GetID) and which becomes
		// the session stream's id (CreateAccessTokenSession appends to
		// req.GetID()) and the access token's sid (token endpoint).
		var err error
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

// check returns the request's verified DPoP proof and refuses scopes the
// client may not request.
func (g *DeviceGrant) check(ctx context.Context, r fosite.AccessRequester) (*dpop.Proof, error) {
	proof, ok := ProofFrom(ctx)
	if !ok {
		return nil, fosite.ErrInvalidRequest.WithHint("A DPoP proof is required.")
	}
	for _, sc := range r.GetRequestedScopes() {
		if !g.Scopes(r.GetClient().GetScopes(), sc) {
			return nil, fosite.ErrInvalidScope.WithHintf("The client may not request scope %q.", sc)
		}
	}
	return proof, nil
}

// PopulateTokenEndpointResponse implements fosite.TokenEndpointHandler.
func (g *PasscodeGrant) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !g.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	return g.issue(ctx, r, resp)
}

// issue signs the access token (which starts the session) and adds the
// refresh token, if the grant made one.
func (g *DeviceGrant) issue(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if _, err := g.Helper.IssueAccessToken(ctx, g.AccessLifetime, r, resp); err != nil {
		return err
	}
	if sess, ok := r.GetSession().(*Session); ok && sess.RefreshToken != "" {
		resp.SetExtra("refresh_token", sess.RefreshToken)
	}
	return nil
}
