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
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	fjwt "github.com/ory/fosite/token/jwt"

	"strongroom.dev/services/authd/internal/domain/session"
)

// Endpoint paths (CONTRACT.md, Actors and listeners).
const (
	PathToken         = "/oauth2/token"
	PathRevoke        = "/oauth2/revoke"
	PathChallenges    = "/v1/challenges"
	PathIntrospect    = "/oauth2/introspect"
	PathDiscovery     = "/.well-known/oauth-authorization-server"
	PathJWKS          = "/.well-known/jwks.json"
	PathSealingKeys   = "/.well-known/sealing-keys.json"
	PathPinSet        = "/.well-known/pinset.json"
	PathPinSetAndroid = "/.well-known/pinset/android.xml"
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
	for i, h := range conf.TokenEndpointHandlers {
		conf.TokenEndpointHandlers[i] = onlyOwnGrant{h}
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

// onlyOwnGrant keeps a fosite token handler from answering grants that are
// not its own with an error carrying a stack trace. fosite asks every
// handler to populate every token response, and its handlers refuse the
// others' grants with errorsx.WithStack(ErrUnknownRequest), which walks
// the goroutine's stack (deep under the HTTP and tracing layers) on every
// refresh, only for fosite to skip the error. The answer is the same
// ErrUnknownRequest, decided by the handler's own CanHandle, without the
// trace; requests the handler does serve go to it unchanged.
type onlyOwnGrant struct{ fosite.TokenEndpointHandler }

func (h onlyOwnGrant) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	return h.TokenEndpointHandler.HandleTokenEndpointRequest(ctx, r)
}

func (h onlyOwnGrant) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	return h.TokenEndpointHandler.PopulateTokenEndpointResponse(ctx, r, resp)
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

// jtiStrategy makes an access token's session id, jti and times its
// "signature" for fosite's storage calls (see accessSignature), so storage
// finds a token's session by the sid the token carries, with no index of
// issued tokens. A grant can still record the token before it is signed
// (the refresh grant decides and records in one append).
//
// The signature is read from the unverified payload: a lookup alone
// proves nothing, and every path that acts on a token verifies its
// signature (which covers sid, jti, iat and exp) by a published key:
// introspection calls ValidateAccessToken right after the lookup, before
// it answers anything from the result; revocation verifies in the HTTP
// layer (revoke) every token accessSignature would read; /admin/v1 and /v1
// verify in Authenticate and never use fosite's storage lookups.
type jtiStrategy struct{ *oauth2.DefaultJWTStrategy }

// AccessTokenSignature returns the token's accessSignature (unverified),
// "" if it has none.
func (s *jtiStrategy) AccessTokenSignature(_ context.Context, token string) string {
	return accessSignature(token)
}

// GenerateAccessToken signs the token and returns its accessSignature.
func (s *jtiStrategy) GenerateAccessToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	token, _, err := s.DefaultJWTStrategy.GenerateAccessToken(ctx, r)
	if err != nil {
		return "", "", err
	}
	sig := accessSignature(token)
	if sig == "" {
		return "", "", errors.New("the access token lacks sid, jti, iat or exp")
	}
	return token, sig, nil
}

// maxAccessToken bounds the tokens whose payload is read unverified.
const maxAccessToken = 16 << 10

// jwtShaped reports whether token has the shape of a compact JWS (three
// dot-separated parts). Only such a token has an accessSignature, so only
// such a token can reach a storage lookup: revoke verifies exactly these.
func jwtShaped(token string) bool {
	return strings.Count(token, ".") == 2
}

// accessSig is what an access token's "signature" says: its session, its
// jti, and its own iat and exp (Unix seconds).
type accessSig struct {
	SID, JTI string
	IAT, EXP int64
}

// accessSignature reads sid, jti, iat and exp from an access token's
// payload WITHOUT verifying it, as "<sid>/<jti>/<iat>/<exp>"; "" when the
// token is not JWT-shaped or lacks one of them. A sid is a session id
// (session.ValidID, so it has no "/"); a jti with a "/" is refused.
func accessSignature(token string) string {
	if len(token) > maxAccessToken || !jwtShaped(token) {
		return ""
	}
	parts := strings.Split(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		SID string `json:"sid"`
		JTI string `json:"jti"`
		IAT int64  `json:"iat"`
		EXP int64  `json:"exp"`
	}
	if json.Unmarshal(raw, &c) != nil {
		return ""
	}
	sig := accessSig{SID: c.SID, JTI: c.JTI, IAT: c.IAT, EXP: c.EXP}
	if !sig.valid() {
		return ""
	}
	return sig.SID + "/" + sig.JTI + "/" + strconv.FormatInt(sig.IAT, 10) + "/" + strconv.FormatInt(sig.EXP, 10)
}

// accessTokenClaim returns one claim of an access token's payload as
// raw JSON, nil when the token is not JWT-shaped or lacks it. It does
// not verify the token: call it only on one that has been verified.
func accessTokenClaim(token, name string) json.RawMessage {
	if len(token) > maxAccessToken || !jwtShaped(token) {
		return nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	if err != nil {
		return nil
	}
	var claims map[string]json.RawMessage
	if json.Unmarshal(raw, &claims) != nil {
		return nil
	}
	return claims[name]
}

func (a accessSig) valid() bool {
	return session.ValidID(a.SID) && a.JTI != "" && !strings.Contains(a.JTI, "/") && a.IAT > 0 && a.EXP > 0
}

// parseAccessSignature is the inverse of accessSignature.
func parseAccessSignature(sig string) (accessSig, bool) {
	f := strings.Split(sig, "/")
	if len(f) != 4 {
		return accessSig{}, false
	}
	iat, err1 := strconv.ParseInt(f[2], 10, 64)
	exp, err2 := strconv.ParseInt(f[3], 10, 64)
	a := accessSig{SID: f[0], JTI: f[1], IAT: iat, EXP: exp}
	if err1 != nil || err2 != nil || !a.valid() {
		return accessSig{}, false
	}
	return a, true
}
