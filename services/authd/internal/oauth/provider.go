package oauth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
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
	provider := compose.Compose(conf, storage, &compose.CommonStrategy{CoreStrategy: strategy},
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
	helper := &oauth2.HandleHelper{AccessTokenStrategy: strategy, AccessTokenStorage: storage, Config: conf}
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
