package oauth

import (
	"context"
	"encoding/json"

	"github.com/ory/fosite"

	"strongroom.dev/services/authd/internal/app"
)

// ClaimAuthorizationDetails carries what the user confirmed (RFC 9396).
const ClaimAuthorizationDetails = "authorization_details"

// BiometricSignIn is the biometric use case (app.Service.BiometricSignIn).
type BiometricSignIn func(ctx context.Context, in app.BiometricRequest) (*app.BiometricSignIn, error)

// BiometricGrant is fosite's token handler for
// urn:strongroom:params:oauth:grant-type:biometric-signature. By the time
// it runs the HTTP layer has verified the DPoP proof and matched its key
// to device_id's registered key; this handler has the assertion checked,
// and the session it starts consumes the assertion's challenge in the same
// append (Session.Consume), so a challenge yields at most one token.
type BiometricGrant struct {
	SignIn BiometricSignIn
	// Issuer is the audience an assertion must name.
	Issuer string
	DeviceGrant
}

var _ fosite.TokenEndpointHandler = (*BiometricGrant)(nil)

// CanSkipClientAuth implements fosite.TokenEndpointHandler.
func (g *BiometricGrant) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool {
	return false
}

// CanHandleTokenEndpointRequest implements fosite.TokenEndpointHandler.
func (g *BiometricGrant) CanHandleTokenEndpointRequest(_ context.Context, r fosite.AccessRequester) bool {
	return r.GetGrantTypes().ExactOne(GrantBiometric)
}

// HandleTokenEndpointRequest implements fosite.TokenEndpointHandler. A
// token that carries authorization details gets no refresh token: the
// confirmation of one payment must not outlive its access token.
func (g *BiometricGrant) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if !g.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	if !r.GetClient().GetGrantTypes().Has(GrantBiometric) {
		return fosite.ErrUnauthorizedClient.WithHint("The client may not use the biometric-signature grant.")
	}
	proof, err := g.check(ctx, r)
	if err != nil {
		return err
	}
	form := r.GetRequestForm()
	res, err := g.SignIn(ctx, app.BiometricRequest{DeviceID: form.Get("device_id"), KeyThumbprint: proof.JKT,
		Assertion: form.Get("assertion"), Audience: g.Issuer, SessionID: r.GetID()})
	if err != nil {
		return err
	}
	if err := g.signedIn(r, res.UserID, res.DeviceID, ACRBiometric, []string{"user", "swk"}, res.Details == nil); err != nil {
		return err
	}
	sess := r.GetSession().(*Session) // signedIn checked its type
	sess.Consume = &res.Consume
	if res.Details != nil {
		sess.SetClaim(ClaimAuthorizationDetails, json.RawMessage(res.Details.Raw))
	}
	return nil
}

// PopulateTokenEndpointResponse implements fosite.TokenEndpointHandler.
func (g *BiometricGrant) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !g.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	return g.issue(ctx, r, resp)
}
