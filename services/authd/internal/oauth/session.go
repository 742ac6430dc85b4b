package oauth

import (
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	fjwt "github.com/ory/fosite/token/jwt"

	"strongroom.dev/services/authd/internal/eventstore"
)

// Claim names added to RFC 9068 access tokens (CONTRACT.md, Token endpoint).
const (
	ClaimClientID = "client_id"
	ClaimSID      = "sid"
	ClaimAuthTime = "auth_time"
	ClaimACR      = "acr"
	ClaimAMR      = "amr"
	ClaimCnf      = "cnf"
)

// Session is the fosite session of a grant: the JWT claims of its access
// token plus what the session stream records but the token does not say.
type Session struct {
	*oauth2.JWTSession
	// UserID is the user of a device grant; empty for client_credentials.
	UserID   string
	DeviceID string
	// KeyThumbprint is the DPoP key the tokens are bound to (cnf.jkt).
	KeyThumbprint string
	// SessionExpiresAt is the session's absolute end; zero means the
	// session ends with its access token (no refresh).
	SessionExpiresAt time.Time
	// RefreshToken (returned once) and RefreshTokenID (recorded) when the
	// grant issues one; IdleExpiresAt ends the session unless refreshed.
	RefreshToken, RefreshTokenID string
	IdleExpiresAt                time.Time
	// GrantType is the grant that made the session (recorded in
	// session.started).
	GrantType string
	// Consume, when set, is appended in the same append that starts the
	// session (the biometric grant's challenge): both or neither commit.
	Consume *eventstore.Append
	// Recorded is set when the grant already appended the event that
	// records this access token (the refresh grant does, atomically with
	// its decision), so storage does not start a session.
	Recorded bool
}

// NewSession returns an empty session whose access tokens are RFC 9068
// JWTs.
func NewSession() *Session {
	return &Session{JWTSession: &oauth2.JWTSession{
		JWTClaims: &fjwt.JWTClaims{Extra: map[string]any{}},
		JWTHeader: &fjwt.Headers{Extra: map[string]any{}},
		ExpiresAt: map[fosite.TokenType]time.Time{},
	}}
}

// Clone implements fosite.Session.
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	c := *s
	if s.JWTSession != nil {
		c.JWTSession = s.JWTSession.Clone().(*oauth2.JWTSession)
	}
	return &c
}

// SetClaim sets a private or RFC-defined claim of the access token.
func (s *Session) SetClaim(name string, v any) { s.JWTClaims.Extra[name] = v }

// Claim returns a claim set with SetClaim.
func (s *Session) Claim(name string) any { return s.JWTClaims.Extra[name] }

// BindTo binds the session's tokens to a DPoP key (RFC 9449 §6.1).
func (s *Session) BindTo(jkt string) {
	s.KeyThumbprint = jkt
	s.SetClaim(ClaimCnf, map[string]any{"jkt": jkt})
}
