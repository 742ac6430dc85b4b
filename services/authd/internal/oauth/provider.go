package oauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	fjwt "github.com/ory/fosite/token/jwt"
)

// Endpoint paths (CONTRACT.md, Actors and listeners).
const (
	PathToken         = "/oauth2/token"
	PathRevoke        = "/oauth2/revoke"
	PathIntrospect    = "/oauth2/introspect"
	PathDiscovery     = "/.well-known/oauth-authorization-server"
	PathJWKS          = "/.well-known/jwks.json"
	PathSealingKeys   = "/.well-known/sealing-keys.json"
	DefaultAccessLife = 5 * time.Minute
)

// ProviderConfig configures the fosite provider.
type ProviderConfig struct {
	Issuer              string
	AccessTokenLifetime time.Duration
}

// NewProvider composes fosite with only the handlers authd uses —
// client_credentials, introspection and revocation — over the event-sourced
// storage and the kid-aware JWT signer. (compose.ComposeAllEnabled would
// demand storage for flows authd does not have.) The device grants are
// added to the returned config's token handlers by later issues.
func NewProvider(cfg ProviderConfig, storage *Storage, signer *Signer) (fosite.OAuth2Provider, *fosite.Config, *oauth2.HandleHelper, error) {
	if cfg.AccessTokenLifetime == 0 {
		cfg.AccessTokenLifetime = DefaultAccessLife
	}
	// fosite's HMAC strategy is composed only for the signature helpers
	// revocation uses; authd issues no HMAC tokens through fosite, so its
	// secret is random per process.
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, nil, nil, fmt.Errorf("fosite secret: %w", err)
	}
	conf := &fosite.Config{
		AccessTokenLifespan:        cfg.AccessTokenLifetime,
		AccessTokenIssuer:          cfg.Issuer,
		IDTokenIssuer:              cfg.Issuer,
		TokenURL:                   cfg.Issuer + PathToken,
		GlobalSecret:               secret,
		ClientSecretsHasher:        SecretHasher{},
		JWTScopeClaimKey:           fjwt.JWTScopeFieldString, // RFC 9068 §2.2.3: "scope" string
		ScopeStrategy:              fosite.ExactScopeStrategy,
		AudienceMatchingStrategy:   fosite.ExactAudienceMatchingStrategy,
		SendDebugMessagesToClients: false,
	}
	strategy := &oauth2.DefaultJWTStrategy{
		Signer:          signer,
		HMACSHAStrategy: compose.NewOAuth2HMACStrategy(conf),
		Config:          conf,
	}
	jtis := &jtiStrategy{DefaultJWTStrategy: strategy}
	provider := compose.Compose(conf, storage, &compose.CommonStrategy{CoreStrategy: jtis},
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
	)
	f, ok := provider.(*fosite.Fosite)
	if !ok {
		return nil, nil, nil, fmt.Errorf("fosite provider is %T", provider)
	}
	conf.ClientAuthenticationStrategy = func(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
		c, err := f.DefaultClientAuthenticationStrategy(ctx, r, form)
		return c, clientAuthError(err)
	}
	// The helper issues access tokens for authd's own grants exactly as
	// fosite's handlers do: same strategy, same storage.
	helper := &oauth2.HandleHelper{AccessTokenStrategy: jtis, AccessTokenStorage: storage, Config: conf}
	return provider, conf, helper, nil
}

// clientAuthError keeps every failed client authentication a 4xx. fosite
// passes some assertion validation errors through raw (an expired
// client_assertion surfaces as a bare JWT error), which its error writer
// would answer 500. Storage failures stay server errors.
func clientAuthError(err error) error {
	var rfc *fosite.RFC6749Error
	if err == nil || errors.As(err, &rfc) || errors.Is(err, errStorage) {
		return err
	}
	return fosite.ErrInvalidClient.WithHint("The client could not be authenticated.").WithWrap(err)
}

// jtiStrategy makes an access token's jti its "signature" for fosite's
// storage calls. A grant can then record the token before it is signed
// (the refresh grant decides and records in one append), and lookups use
// an id the server chose. Lookups alone prove nothing: every path that
// acts on a token verifies its signature first (introspection through
// ValidateAccessToken, revocation in the HTTP layer).
type jtiStrategy struct{ *oauth2.DefaultJWTStrategy }

// AccessTokenSignature returns the token's jti (unverified), "" if none.
func (s *jtiStrategy) AccessTokenSignature(_ context.Context, token string) string {
	return unverifiedJTI(token)
}

// GenerateAccessToken signs the token and returns its jti as signature.
func (s *jtiStrategy) GenerateAccessToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	token, _, err := s.DefaultJWTStrategy.GenerateAccessToken(ctx, r)
	if err != nil {
		return "", "", err
	}
	return token, unverifiedJTI(token), nil
}

func unverifiedJTI(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || len(token) > 16<<10 {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		JTI string `json:"jti"`
	}
	if json.Unmarshal(raw, &c) != nil {
		return ""
	}
	return c.JTI
}
